/*
** ag_pq.h: libpq, loaded on first use (see ag_dl.h for why).
** Call through the table: `const ag_pq_api *pq = ag_pq(err);` then
** `pq->PQsendQuery(conn, sql)`.  Add a function here before using it.
** The pipeline functions need libpq 14 or later (Debian 12 has 15).
*/
#ifndef AG_PQ_H
#define AG_PQ_H

#include <libpq-fe.h>

#include "ag_err.h"

#define AG_PQ_SYMBOLS(X) \
  X(PQclear) X(PQcmdStatus) X(PQcmdTuples) X(PQconnectdbParams) \
  X(PQconsumeInput) X(PQenterPipelineMode) X(PQerrorMessage) \
  X(PQexitPipelineMode) X(PQfinish) X(PQflush) X(PQfname) \
  X(PQftype) X(PQgetResult) X(PQgetisnull) X(PQgetlength) X(PQgetvalue) \
  X(PQisBusy) X(PQlibVersion) X(PQnfields) X(PQnparams) X(PQntuples) \
  X(PQpipelineSync) X(PQresultErrorField) X(PQresultStatus) \
  X(PQsendDescribePrepared) X(PQsendPrepare) X(PQsendQuery) \
  X(PQsendQueryParams) X(PQsendQueryPrepared) \
  X(PQsetNoticeProcessor) X(PQsetnonblocking) X(PQsocket) X(PQstatus) \
  X(PQtransactionStatus)

typedef struct ag_pq_api {
#define AG_PQ_FIELD(f) __typeof__(f) *f;
  AG_PQ_SYMBOLS(AG_PQ_FIELD)
#undef AG_PQ_FIELD
} ag_pq_api;

/*
** The libpq table, loading libpq.so.5 on the first call.  Borrowed; valid
** for the life of the process.  NULL with `err` filled when libpq cannot
** be loaded (then every later call fails the same way, quickly).
*/
const ag_pq_api *ag_pq(char err[AG_ERRLEN]);

#endif
