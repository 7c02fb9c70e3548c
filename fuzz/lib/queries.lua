--- Queries shared by the `ast` and `ast_parse` fuzz targets: the kinds
--- rulepacks use (fields, anchors, quantifiers, alternations, wildcards,
--- ERROR, every predicate and a directive).
local COMMON = {
  [[ (variable_declaration "var" @report) ]],
  [[ ((identifier) @id (#match? @id "^[a-z_][[:alnum:]_]*$")) ]],
  [[ ((call_expression function: (identifier) @fn arguments: (arguments (_)* @args))
      (#any-of? @fn "eval" "Function" "setTimeout")) ]],
  [[ ((predefined_type) @t (#eq? @t "any")) ]],
  [[ (non_null_expression) @nn ]],
  [[ ((comment) @c (#match? @c "@ts-(ignore|nocheck|expect-error)")) ]],
  [[ ((assignment_expression left: (identifier) @l right: (identifier) @r) (#eq? @l @r)) ]],
  [[ ((identifier) @a (#not-eq? @a "x") (#not-match? @a "^_") (#not-any-of? @a "y" "z")) ]],
  [[ (function_declaration name: (identifier) @name parameters: (formal_parameters) @params
      return_type: (type_annotation)? @ret) @fn ]],
  [[ (ERROR) @error ]],
  [[ ((lexical_declaration (variable_declarator name: (_) @n value: (_)? @v)) @decl
      (#set! kind "let")) ]],
  [[ [(true) (false) (null) (undefined)] @lit ]],
  [[ (statement_block . (_) @first) ]],
  [[ (class_body (_) @last .) ]],
  [[ (arrow_function parameters: (_) @p body: (_) @b) ]],
  [[ ((string (string_fragment) @s) (#match? @s "(sk-ant-|sk-proj-)[A-Za-z0-9_-]+")) ]],
  [[ (template_string (template_substitution (_) @sub)) ]],
  [[ (_ (_ (identifier) @deep)) ]],
  [[ (catch_clause parameter: (identifier) @e) ]],
  [[ (import_statement (import_clause (named_imports (import_specifier name: (_) @imp)))) ]],
}
local TSX = {
  [[ (jsx_opening_element name: (_) @tag (jsx_attribute (property_identifier) @attr)*) @el ]],
  [[ ((jsx_self_closing_element name: (identifier) @tag) (#eq? @tag "img")) ]],
  [[ (jsx_attribute (property_identifier) @name (#match? @name "^on[A-Z]") (_)? @v) ]],
  [[ (jsx_element open_tag: (jsx_opening_element name: (_) @n) close_tag: (jsx_closing_element name: (_) @c)) ]],
  [[ ((jsx_attribute (property_identifier) @p (jsx_expression (object) @o)) (#eq? @p "style")) ]],
}

return { COMMON = COMMON, TSX = TSX }
