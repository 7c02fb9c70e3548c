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
--- source order, or the first `max` of them. Lines and columns are 1-based,
--- columns in bytes.
---@param max? integer At most this many (default: all)
---@return aegis.ast.Diagnostic[]
---@return integer total How many there are in all
function Tree:errors(max) end

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

--- The scope analysis of the tree (declarations, references, assignments
--- per scope; docs/ast.md "Scopes"), built in C on first call and cached:
--- every call returns the same table. Fails only without memory.
---@return aegis.ast.Scope? scope
---@return string? err `ast: scope: out of memory`
---@return string? code 'nomem'
function Tree:scope() end

--- The 1-based line and column (in bytes) of a 0-based byte offset of the
--- source (0 to its length); the line index is made once per tree.
---@param byte integer
---@return integer line
---@return integer col
function Tree:position(byte) end

--- The result of `tree:scope()`. `variables`, `scopes` and `unresolved`
--- are made on first use (a variable's node fields and `refs` too);
--- `sc:filter` and `sc:resolve` make only the variables they return, and
--- every way to reach a variable gives the same table.
---@class aegis.ast.Scope
---@field variables aegis.ast.Variable[] declared bindings, in source order
---@field scopes aegis.ast.ScopeInfo[] scope 1 is the module scope; a scope's index is greater than its parent's
---@field unresolved aegis.ast.Reference[] references to undeclared names (globals), with `name`
local Scope = {}

--- The variable an identifier refers to (a reference or a written name),
--- or nil for a declaration's own name, a global, or any other node.
---@param node aegis.ast.Node
---@return aegis.ast.Variable?
function Scope:resolve(node) end

--- Scope `i`'s table, the same as `sc.scopes[i]` (nil out of range), made
--- alone on first use: a rule that looks at the scopes of a few variables
--- does not make one for every scope of the file as `sc.scopes` does.
---@param i integer
---@return aegis.ast.ScopeInfo?
function Scope:scope(i) end

--- Where a function (declaration, function or generator expression, arrow
--- or method) is written, as recorded by the walk: its parent with
--- parentheses skipped, the child of that parent it sits under, its
--- grandparent, and typescript-eslint's ancestorHasReturnType walk from the
--- parent (the nearest ancestor that is a function with a return type, a
--- typed variable declarator or class property, or an expression
--- statement), and whether it returns a function (an arrow whose body is
--- one, or at least one `return` and all of its own returning one). Nothing
--- for other nodes. Recorded by the scope walk: no parent lookups.
---@param fn aegis.ast.Node
---@return aegis.ast.Node? parent
---@return aegis.ast.Node? from
---@return aegis.ast.Node? grand
---@return boolean? typed_ancestor
---@return boolean? returns_function
function Scope:context(fn) end

--- `context(fn)` without making nodes: the types of the parent and the
--- grandparent (nil for none), typed_ancestor and returns_function; nothing
--- for a node that is not a function.
---@param fn aegis.ast.Node
---@return string? parent_type
---@return string? grand_type
---@return boolean? typed_ancestor
---@return boolean? returns_function
function Scope:context_types(fn) end

--- The variables, in source order, whose `kind` is `spec.kind` (when given)
--- and whose boolean flags (`used`, `exported`, `has_init`, `self`,
--- `param_prop`, `signature`, `setter`, `type_import`, `direct`, `declare`,
--- `value`, `type`) are as `spec` gives them: `sc:filter{kind = 'let'}`,
--- `sc:filter{used = false, exported = false}`. The same tables as
--- `sc.variables`, made only for these (a file has thousands). Raises on
--- another key.
---@param spec table<string, string|boolean>
---@return aegis.ast.Variable[]
function Scope:filter(spec) end

---@class aegis.ast.ScopeInfo
---@field kind 'module'|'function'|'block'|'class'|'catch'|'for'|'switch'|'namespace'|'enum'|'type'|'static'
---@field node aegis.ast.Node the node that opens it
---@field parent? integer index of the enclosing scope
---@field varscope integer index of the nearest function/module/namespace/static scope (where `var` goes)
---@field index integer
---@field ambient boolean body of a `declare`d namespace or module, or of `declare global`
---@field export_list boolean holds `export {..}`, `export * from`, `export =` or `export default <name>`

---@alias aegis.ast.VariableKind 'var'|'let'|'const'|'using'|'param'|'function'|'class'|'import'|'catch'
---|'enum'|'type'|'interface'|'namespace'|'type_param'|'enum_member'

--- A declared binding: one per name and scope (repeated declarations and
--- declaration merging add definitions: `ndefs`). Flags are booleans.
---@class aegis.ast.Variable
---@field name string
---@field kind aegis.ast.VariableKind
---@field id aegis.ast.Node the identifier of the first declaration
---@field decl aegis.ast.Node its declarator, parameter, specifier or declaration node
---@field statement aegis.ast.Node the whole declaration (lexical_declaration, function, import_statement, ...)
---@field scope integer index into `scopes`
---@field index integer index into `variables`
---@field ndefs integer declarations merged into this variable
---@field nrefs integer number of `refs`
---@field reads integer value reads (compound assignments and updates included)
---@field writes integer assignments (`=`, `op=`, `++`, destructuring, for-in/of targets), initializers excluded
---@field type_reads integer references in type positions (type names, `typeof x`)
---@field refs aegis.ast.Reference[] every reference in source order, initializer writes included
---@field exported boolean declared by an export statement
---@field has_init boolean has an initializer (or a default value, or is a for-in/of binding)
---@field used boolean read by a reference typescript-eslint's no-unused-vars counts as a use (not `typeof x`
--- or `x is T` unless a type import)
---@field self boolean a class's or named function expression's own name, inside it
---@field param_prop boolean a constructor parameter property (`private x`)
---@field signature boolean a parameter of a signature or function type (no body)
---@field setter boolean a parameter of a setter
---@field direct boolean a parameter that is a plain identifier (no default, pattern or rest)
---@field type_import boolean every definition is an `import type`
---@field declare boolean declared inside a `declare` (ambient) declaration
---@field value boolean has a value meaning
---@field type boolean has a type meaning (classes, enums, imports, namespaces have both)
---@field self_scope? integer the scope of its own body (function, type, enum, namespace): references there are `self`

---@class aegis.ast.Reference
---@field node aegis.ast.Node the identifier (the JSX element for `pragma`)
---@field scope integer the scope it occurs in
---@field read boolean
---@field write boolean
---@field type boolean in a type position
---@field typeof boolean inside `typeof x` in a type
---@field init boolean the write of a declaration's initializer
---@field self boolean inside the resolved variable's own body
---@field self_update boolean `x++` / `x += 1` whose value is unused
---@field pragma? true the implicit `React` read of a JSX element (TSX)
---@field predicate? true the `x` of a type predicate (`x is T`, `asserts x`)
---@field name? string for `unresolved` entries

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

--- `range()`'s bytes alone, without making a table.
---@return integer start_byte 0-based
---@return integer end_byte exclusive
function Node:byte_range() end

---@return aegis.ast.Node[] children every child, anonymous tokens included
function Node:children() end

---@return aegis.ast.Node[] children named children only
function Node:named_children() end

---@return integer
function Node:child_count() end

---@return integer
function Node:named_child_count() end

--- Child `i`: a loop over i forward costs one step per child (the tree
--- keeps a cursor on the last child asked for); going back starts over.
---@param i integer 1-based
---@return aegis.ast.Node? child
function Node:child(i) end

--- Named child `i`, as `child(i)`.
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

--- tree-sitter finds a parent by walking down from the root; once a tree's
--- parent lookups have cost more than a walk of it, they read a map made by
--- one walk (linear in the tree however many are asked for).
---@return aegis.ast.Node? parent
function Node:parent() end

--- Siblings are tree-sitter's: found from the parent, which it finds from
--- the root (depth, plus the parent's children before the node).
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

--- One match of a query: `pattern` 1-based, `captures` the first node of
--- each capture name, `list` every (name, node) in order.
---@class aegis.ast.Match
---@field pattern integer
---@field captures table<string, aegis.ast.Node>
---@field list {name: string, node: aegis.ast.Node}[]

--- A compiled query (see `ast.query`). Closed by `q:close()` or the garbage
--- collector; the cache in `aegis.ast` keeps the ones it made alive.
---@class aegis.ast.Query
local Query = {}

--- Every match of the query under a tree's root or a node, with predicates
--- applied. `captures` maps each capture name to its first node; `list`
--- keeps every (name, node) of the match in order. `pattern` is 1-based.
--- On a whole tree, a query whose patterns are all chains (`q:fast()`) is
--- answered by one tree-cursor walk instead of a `TSQueryCursor`, with the
--- same matches in the same order; `mode` 'cursor' forces the cursor,
--- 'walk' the fast path (an error when there is none). `scope` true builds
--- the tree's scope analysis (`tree:scope()`) in that same walk when it has
--- none yet. The cursor runs under the time budget of the tree's parse (its
--- time is quadratic in the depth on some error trees); past it, nil.
---@param target aegis.ast.Tree|aegis.ast.Node
---@param mode? 'auto'|'cursor'|'walk'
---@param scope? boolean
---@return aegis.ast.Match[]? matches
---@return string? err `ast: query: timeout (N ms)`
---@return string? code 'timeout'
function Query:matches(target, mode, scope) end

--- Whether `q:matches(tree)` takes the fast path: every pattern is one node,
--- or a node with one child pattern (under a field or not) and so on down,
--- with captures, negated fields (`!f`) and predicates; no wildcard,
--- quantifier, alternation, anchor, supertype or `ERROR`. With `i`, whether
--- pattern i alone is simple (the standards engine runs the simple patterns
--- of its rules on the fast path and only the others on a query cursor).
---@param i? integer A pattern index (1-based)
---@return boolean
function Query:fast(i) end

---@return integer count the number of patterns
function Query:pattern_count() end

--- Where pattern `i` (1-based) starts in the query's source text.
---@param i integer
---@return integer byte 0-based offset
function Query:pattern_start(i) end

--- Every capture in document order, with predicates applied. Through the
--- cursor, under the time budget of the tree's parse; past it, nil.
---@param target aegis.ast.Tree|aegis.ast.Node
---@return {name: string, node: aegis.ast.Node, pattern: integer}[]? captures
---@return string? err `ast: query: timeout (N ms)`
---@return string? code 'timeout'
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
