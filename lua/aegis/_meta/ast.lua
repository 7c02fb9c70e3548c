---@meta
-- luacheck: no unused args, ignore 241
--- Declarations of the C userdata behind `aegis.ast` (runtime/last.c) and of
--- the diff result (runtime/ag_astdiff.c).
error('Cannot require a meta file')

--- A parsed source. Owns the tree-sitter tree and keeps the source string
--- alive. Closed by `tree:close()`, by leaving a `<close>` scope, or by the
--- garbage collector (not before its last node is collected: nodes pin it).
--- A closed tree raises "attempt to use a closed tree", and so do its nodes.
---@class aegis.ast.Tree

---@class aegis.ast.Diagnostic
---@field kind 'error'|'missing'
---@field message string
---@field line integer
---@field col integer
---@field end_line integer
---@field end_col integer
---@field start_byte integer
---@field end_byte integer
---@field node aegis.ast.Node
local Tree = {}

--- The root node (`program`, or `ERROR` when nothing parses).
---@return aegis.ast.Node
function Tree:root() end

--- Parse diagnostics: every ERROR node (outermost only) and MISSING node, in
--- source order. Lines and columns are 1-based, columns in bytes.
---@return aegis.ast.Diagnostic[]
function Tree:errors() end

--- The source text of a node of this tree.
---@param node aegis.ast.Node
---@return string
function Tree:text(node) end

--- The grammar the tree was parsed with.
---@return 'ts'|'tsx'
function Tree:lang() end

--- The source the tree was parsed from.
---@return string
function Tree:source() end

--- Releases the tree-sitter tree; idempotent.
---@return true
function Tree:close() end

--- A node of a tree. Nodes compare equal with `==` when they are the same
--- node. Ranges: bytes 0-based with the end exclusive, rows and columns
--- 0-based (tree-sitter's convention; diagnostics are 1-based).
---@class aegis.ast.Node
local Node = {}

--- The grammar's node type (`identifier`, `call_expression`, `ERROR`, or
--- the token itself for anonymous nodes such as `(`).
---@return string
function Node:type() end

---@return string text the source bytes the node spans
function Node:text() end

---@return {start_byte: integer, end_byte: integer, start_row: integer, start_col: integer,
---  end_row: integer, end_col: integer}
function Node:range() end

---@return aegis.ast.Node[] children every child, anonymous tokens included
function Node:children() end

---@return aegis.ast.Node[] children named children only
function Node:named_children() end

---@return integer
function Node:child_count() end

---@return integer
function Node:named_child_count() end

---@param i integer 1-based
---@return aegis.ast.Node? child
function Node:child(i) end

---@param i integer 1-based
---@return aegis.ast.Node? child
function Node:named_child(i) end

--- The child filling a field of the grammar (`name`, `body`, ...).
---@param field string
---@return aegis.ast.Node? child
function Node:child_by_field(field) end

--- The field this node fills in its parent, or nil.
---@return string? field
function Node:field_name() end

---@return aegis.ast.Node? parent
function Node:parent() end

---@return aegis.ast.Node? sibling
function Node:next_sibling() end

---@return aegis.ast.Node? sibling
function Node:prev_sibling() end

---@return aegis.ast.Node? sibling
function Node:next_named_sibling() end

---@return aegis.ast.Node? sibling
function Node:prev_named_sibling() end

---@return boolean
function Node:is_named() end

--- Whether the node is or contains an ERROR or MISSING node.
---@return boolean
function Node:has_error() end

--- Whether the parser inserted this (zero-width) node to recover.
---@return boolean
function Node:is_missing() end

---@return boolean
function Node:is_error() end

--- The S-expression of the subtree (named nodes, with fields).
---@return string
function Node:sexp() end

---@return aegis.ast.Tree tree the tree the node belongs to
function Node:tree() end

--- A compiled query (see `ast.query`). Closed by `q:close()` or the garbage
--- collector; the cache in `aegis.ast` keeps the ones it made alive.
---@class aegis.ast.Query
local Query = {}

--- Every match of the query under a tree's root or a node, with predicates
--- applied. `captures` maps each capture name to its first node; `list`
--- keeps every (name, node) of the match in order. `pattern` is 1-based.
---@param target aegis.ast.Tree|aegis.ast.Node
---@return {pattern: integer, captures: table<string, aegis.ast.Node>, list: {name: string, node: aegis.ast.Node}[]}[]
function Query:matches(target) end

--- Every capture in document order, with predicates applied.
---@param target aegis.ast.Tree|aegis.ast.Node
---@return {name: string, node: aegis.ast.Node, pattern: integer}[]
function Query:captures(target) end

---@return string[] names the capture names, by capture id
function Query:capture_names() end

---@return true
function Query:close() end

--- A node span in a diff: bytes 0-based (end exclusive), lines 1-based,
--- size in normalised nodes.
---@class aegis.ast.Span
---@field start_byte integer
---@field end_byte integer
---@field line integer
---@field end_line integer
---@field size integer

--- One edit: `insert` (dst; `nodes` inserted), `delete` (src; `nodes`),
--- `update` (src, dst, from, to), `move` (src, dst, `nodes`), `rename`
--- (src and dst: the declaration; from, to, n occurrences).
---@class aegis.ast.Action
---@field action 'insert'|'delete'|'update'|'move'|'rename'
---@field type string normalised node type
---@field src? aegis.ast.Span
---@field dst? aegis.ast.Span
---@field from? string
---@field to? string
---@field n? integer
---@field nodes? integer

--- A declaration-level change: kind 'function', 'class', 'method',
--- 'interface', 'type', 'enum', 'namespace' or 'export'; change 'added',
--- 'removed', 'renamed' (with `to`), 'moved', 'signature', 'body',
--- 'exported', 'unexported' or 'changed' (an export list).
---@class aegis.ast.DeclChange
---@field kind string
---@field name string
---@field change string
---@field to? string
---@field src? aegis.ast.Span
---@field dst? aegis.ast.Span

--- The result of `ast.diff`.
---@class aegis.ast.Diff
---@field same boolean no action at all
---@field counts {insert: integer, delete: integer, update: integer, move: integer, rename: integer}
---@field actions aegis.ast.Action[] the edit script, in the order it applies
---@field moves {src: aegis.ast.Span, dst: aegis.ast.Span}[]
---@field renames {from: string, to: string, n: integer}[]
---@field summary aegis.ast.DeclChange[]
---@field src_nodes integer normalised nodes of the first source
---@field dst_nodes integer normalised nodes of the second source
---@field verified? boolean with `verify`: the script applied to the first tree gave the second
