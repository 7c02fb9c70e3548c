-- The a11y rulepack: each rule with snippets that pass and snippets that fail, after the valid and
-- invalid examples of the eslint-plugin-jsx-a11y rules of the same names (recommended options).

local standards = require('aegis.standards')

-- Findings of one rule on a TSX snippet (the snippet is an expression statement).
local function run(rule, snippet, config)
  local src = 'const x = (\n' .. snippet .. '\n);\n'
  local findings, problems = standards.check_source(src, { path = 'snippet.tsx', rules = { 'a11y/' .. rule },
    config = config })
  for _, p in ipairs(problems or {}) do
    if p.kind ~= 'syntax' then error('problem: ' .. tostring(p.message)) end
  end
  return findings
end

local function options(rule, opts)
  return { rules = { ['a11y/' .. rule] = { options = opts } } }
end

-- Checks that every `valid` snippet passes and every `invalid` one gives one finding on its first line
-- (at the snippet's first column, or at `col`) with a message matching `message`.
local function cases(rule, valid, invalid)
  describe(rule, function()
    for _, c in ipairs(valid) do
      local snippet, config = c, nil
      if type(c) == 'table' then snippet, config = c[1], c.config end
      it('passes ' .. snippet:gsub('\n', ' '), function()
        local fs = run(rule, snippet, config)
        assert.equal(0, #fs, fs[1] and fs[1].message)
      end)
    end
    for _, c in ipairs(invalid) do
      it('reports ' .. c[1]:gsub('\n', ' '), function()
        local fs = run(rule, c[1], c.config)
        assert.equal(c.count or 1, #fs)
        local f = fs[1]
        assert.equal('a11y/' .. rule, f.rule)
        assert.equal('error', f.severity)
        assert.equal(2, f.line)
        assert.equal(c.col or 1, f.col)
        assert.matches(c.message, f.message, 1, true)
      end)
    end
  end)
end

describe('rulepack a11y', function()
  it('has the nine rules, each mapped to its jsx-a11y rule and limited to TSX', function()
    local fs = standards.check_source('const a = <img />;', { path = 'a.ts', rules = { 'a11y' } })
    assert.equal(0, #fs) -- JSX does not exist in .ts
    local e = standards.engine({ rules = { 'a11y' } })
    local names = {}
    for _, r in ipairs(e:rule_list()) do names[#names + 1] = r.id .. ' ' .. tostring(r.eslint) end
    table.sort(names)
    assert.same({
      'a11y/alt-text jsx-a11y/alt-text', 'a11y/anchor-has-content jsx-a11y/anchor-has-content',
      'a11y/anchor-is-valid jsx-a11y/anchor-is-valid', 'a11y/aria-role jsx-a11y/aria-role',
      'a11y/click-events-have-key-events jsx-a11y/click-events-have-key-events',
      'a11y/heading-has-content jsx-a11y/heading-has-content',
      'a11y/label-has-associated-control jsx-a11y/label-has-associated-control',
      'a11y/no-noninteractive-element-interactions jsx-a11y/no-noninteractive-element-interactions',
      'a11y/no-static-element-interactions jsx-a11y/no-static-element-interactions',
    }, names)
  end)

  it('honours eslint-disable comments with the jsx-a11y name', function()
    local src = 'const x = (\n  // eslint-disable-next-line jsx-a11y/alt-text\n  <img src="a" />\n);\n'
    assert.equal(0, #standards.check_source(src, { path = 'a.tsx', rules = { 'a11y/alt-text' } }))
  end)

  cases('alt-text', {
    '<img src="a.png" alt="A red door" />',
    '<img src="a.png" alt="" />',
    '<img src="a.png" alt={caption} />',
    '<img src="a.png" alt={`photo of ${name}`} />',
    '<img src="a.png" alt={t("door")} />',
    '<img src="a.png" aria-label="A red door" />',
    '<img src="a.png" aria-labelledby="caption-id" />',
    '<img src="a.png" {...{ alt: "door" }} />',
    '<Image src="a.png" />',
    '<object aria-label="chart" />',
    '<object title="chart" />',
    '<object>A chart of sales</object>',
    '<object>{fallback}</object>',
    '<area alt="Kitchen" />',
    '<area aria-labelledby="kitchen" />',
    '<input type="image" alt="Submit" />',
    '<input type="image" aria-label="Submit" />',
    '<input type="text" />',
    '<input type={kind} />',
  }, {
    { '<img src="a.png" />', message = '<img> has no alt prop' },
    { '<img src="a.png" {...props} />', message = '<img> has no alt prop' },
    { '<img src="a.png" alt />', message = 'alt on <img> has no usable value' },
    { '<img src="a.png" alt={undefined} />', message = 'alt on <img> has no usable value' },
    { '<img src="a.png" alt={null} />', message = 'alt on <img> has no usable value' },
    { '<img src="a.png" alt={false} />', message = 'alt on <img> has no usable value' },
    { '<img src="a.png" role="presentation" />', message = 'mark a decorative image with alt=""' },
    { '<img src="a.png" role="none" />', message = 'mark a decorative image with alt=""' },
    { '<img src="a.png" aria-label="" />', message = 'aria-label on an image is empty' },
    { '<img src="a.png" aria-labelledby={undefined} />',
      message = 'aria-labelledby on an image is empty' },
    { '<object />', message = '<object> has no text alternative' },
    { '<object><span aria-hidden /></object>', message = '<object> has no text alternative' },
    { '<object>{undefined}</object>', message = '<object> has no text alternative' },
    { '<area />', message = '<area> of an image map has no text alternative' },
    { '<area alt />', message = '<area> of an image map has no text alternative' },
    { '<input type="image" />', message = '<input type="image"> has no text alternative' },
    { '<input type="image" alt={undefined} />', message = '<input type="image"> has no text alternative' },
  })

  describe('alt-text options', function()
    it('checks only the elements listed in `elements`', function()
      assert.equal(0, #run('alt-text', '<img src="a.png" />', options('alt-text', { elements = { 'area' } })))
      assert.equal(1, #run('alt-text', '<area />', options('alt-text', { elements = { 'area' } })))
    end)
  end)

  cases('anchor-has-content', {
    '<a href="/home">Home</a>',
    '<a href="/home"><Icon /></a>',
    '<a href="/home">{label}</a>',
    '<a href="/home">{/* filled in later */}</a>',
    '<a href="/home"> </a>',
    '<a href="/home" title="Home" />',
    '<a href="/home" aria-label="Home" />',
    '<a href="/home" children={label} />',
    '<a href="/home" dangerouslySetInnerHTML={{ __html: html }} />',
    '<Link to="/home" />',
  }, {
    { '<a href="/home" />', message = 'anchor has no content a screen reader can announce' },
    { '<a href="/home"></a>', message = 'anchor has no content a screen reader can announce' },
    { '<a href="/home"><span aria-hidden /></a>', message = 'anchor has no content a screen reader can announce' },
    { '<a href="/home"><span aria-hidden="true">x</span></a>', message = 'anchor has no content' },
    { '<a href="/home">{undefined}</a>', message = 'anchor has no content a screen reader can announce' },
    { '<a href="/home" {...props} />', message = 'anchor has no content a screen reader can announce' },
  })

  cases('anchor-is-valid', {
    '<a href="/home">Home</a>',
    '<a href="https://example.com">x</a>',
    '<a href="#section">x</a>',
    '<a href={url}>x</a>',
    '<a href={`/users/${id}`}>x</a>',
    '<a {...props}>x</a>',
    '<a {...props} onClick={go}>x</a>',
    '<a href="/home" onClick={track}>x</a>',
    '<Link onClick={go}>x</Link>',
  }, {
    { '<a>x</a>', message = 'anchor without href cannot be reached with the keyboard' },
    { '<a href={undefined}>x</a>', message = 'anchor without href' },
    { '<a href={null}>x</a>', message = 'anchor without href' },
    { '<a href="">x</a>', message = 'anchor href is not an address' },
    { '<a href="#">x</a>', message = 'anchor href is not an address' },
    { '<a href={"#"}>x</a>', message = 'anchor href is not an address' },
    { '<a href="javascript:void(0)">x</a>', message = 'anchor href is not an address' },
    { '<a href=" javascript:go()">x</a>', message = 'anchor href is not an address' },
    { '<a onClick={go}>x</a>', message = 'anchor used as a button' },
    { '<a href="#" onClick={go}>x</a>', message = 'anchor used as a button' },
    { '<a href="javascript:void(0)" onClick={go}>x</a>', message = 'anchor used as a button' },
  })

  describe('anchor-is-valid options', function()
    it('reports only the `aspects` asked for', function()
      local c = options('anchor-is-valid', { aspects = { 'noHref' } })
      assert.equal(0, #run('anchor-is-valid', '<a href="#">x</a>', c))
      assert.equal(1, #run('anchor-is-valid', '<a>x</a>', c))
      c = options('anchor-is-valid', { aspects = { 'invalidHref' } })
      assert.equal(0, #run('anchor-is-valid', '<a>x</a>', c))
      local fs = run('anchor-is-valid', '<a href="#" onClick={go}>x</a>', c)
      assert.equal(1, #fs)
      assert.matches('anchor href is not an address', fs[1].message, 1, true)
    end)
    it('reads the `specialLink` props as href', function()
      local c = options('anchor-is-valid', { specialLink = { 'to' } })
      assert.equal(0, #run('anchor-is-valid', '<a to="/home">x</a>', c))
      assert.equal(1, #run('anchor-is-valid', '<a to="#">x</a>', c))
    end)
  end)

  cases('click-events-have-key-events', {
    '<div onClick={open} onKeyDown={open} />',
    '<div onClick={open} onKeyUp={open} />',
    '<div onClick={open} onKeyPress={open} />',
    '<div onClick={open} aria-hidden />',
    '<div onClick={open} role="presentation" />',
    '<input type="hidden" onClick={open} />',
    '<button onClick={open}>Open</button>',
    '<a href="/x" onClick={open}>x</a>',
    '<input onClick={open} />',
    '<select onClick={open} />',
    '<td onClick={open} />',
    '<MyButton onClick={open} />',
    '<div />',
  }, {
    { '<div onClick={open} />', message = 'has no keyboard handler' },
    { '<div onClick={open} {...props} />', message = 'has no keyboard handler' },
    { '<div onclick={open} />', message = 'has no keyboard handler' },
    { '<div onClick={undefined} />', message = 'has no keyboard handler' },
    { '<div onClick={open} aria-hidden="false" />', message = 'has no keyboard handler' },
    { '<section onClick={open} onClick={close} />', message = 'has no keyboard handler' },
    { '<a onClick={open}>x</a>', message = 'has no keyboard handler' },
    { '<div {...{ onClick: open }} />', message = 'has no keyboard handler' },
    { '<li onClick={open} />', message = 'has no keyboard handler' },
  })

  cases('no-static-element-interactions', {
    '<div />',
    '<div className="x" onFocus={f} />',
    '<div onClick={undefined} />',
    '<div onClick={null} />',
    '<div onClick={open} role="button" />',
    '<div onClick={open} role="presentation" />',
    '<div onClick={open} aria-hidden />',
    '<div onClick={open} role={role} />',
    '<div onClick={open} role={open ? "button" : "link"} />',
    '<div onClick={open} role="listitem" />',
    '<div onClick={open} role="widget" />',
    '<button onClick={open} />',
    '<input onClick={open} />',
    '<li onClick={open} />',
    '<section onClick={open} aria-label="Panel" />',
    '<MyDiv onClick={open} />',
    '<div onMouseEnter={hover} />',
  }, {
    { '<div onClick={open} />', message = 'static element with a mouse or keyboard handler' },
    { '<span onKeyDown={key} />', message = 'static element with a mouse or keyboard handler' },
    { '<div onMouseDown={f} onMouseUp={g} />', message = 'static element with a mouse or keyboard handler' },
    { '<a onClick={open}>x</a>', message = 'static element with a mouse or keyboard handler' },
    { '<section onClick={open} />', message = 'static element with a mouse or keyboard handler' },
    { '<header onClick={open} />', message = 'static element with a mouse or keyboard handler' },
    { '<div onClick={open} role="foo" />', message = 'static element with a mouse or keyboard handler' },
    { '<div onClick={open} {...props} />', message = 'static element with a mouse or keyboard handler' },
  })

  describe('no-static-element-interactions options', function()
    it('checks the `handlers` given', function()
      local c = options('no-static-element-interactions', { handlers = { 'onMouseEnter' } })
      assert.equal(1, #run('no-static-element-interactions', '<div onMouseEnter={hover} />', c))
      assert.equal(0, #run('no-static-element-interactions', '<div onClick={open} />', c))
    end)
    it('reports a role it cannot read when allowExpressionValues is false', function()
      local c = options('no-static-element-interactions', { allowExpressionValues = false })
      assert.equal(1, #run('no-static-element-interactions', '<div onClick={open} role={role} />', c))
    end)
  end)

  cases('no-noninteractive-element-interactions', {
    '<div onClick={open} />',
    '<button onClick={open} />',
    '<li onClick={open} role="menuitem" />',
    '<li onClick={open} role="presentation" />',
    '<li onClick={open} aria-hidden />',
    '<p onClick={open} contentEditable="true" />',
    '<img src="a.png" alt="" onLoad={loaded} onError={failed} />',
    '<iframe title="x" onLoad={loaded} />',
    '<dialog onKeyDown={escape} />',
    '<main onFocus={f} />',
    '<td onClick={sort} />',
    '<ListItem onClick={open} />',
  }, {
    { '<li onClick={open} />',
      message = 'non-interactive element (content or container) with a mouse or keyboard handler' },
    { '<h1 onClick={open}>Title</h1>', message = 'non-interactive element (content or container)' },
    { '<img src="a.png" alt="" onClick={zoom} />', message = 'non-interactive element (content or container)' },
    { '<div onClick={open} role="listitem" />', message = 'non-interactive element (content or container)' },
    { '<section onKeyUp={k} aria-label="Panel" />', message = 'non-interactive element (content or container)' },
    { '<form onClick={f} />', message = 'non-interactive element (content or container)' },
    { '<dialog onClick={close} />', message = 'non-interactive element (content or container)' },
    { '<p onClick={open} contentEditable={true} />', message = 'non-interactive element (content or container)' },
  })

  cases('label-has-associated-control', {
    '<label htmlFor="name">Name</label>',
    '<label htmlFor={id}>{text}</label>',
    '<label>Name <input /></label>',
    '<label><span>Name</span><select /></label>',
    '<label aria-label="Name"><input /></label>',
    '<label>{text}</label>',
    '<label htmlFor="n"><Trans>Name</Trans></label>',
    '<label {...props}><input /></label>',
    '<Label>Name</Label>',
  }, {
    { '<label>Name</label>', message = 'label is not tied to a control' },
    { '<label htmlFor="">Name</label>', message = 'label is not tied to a control' },
    { '<label>Name <Input /></label>', message = 'label is not tied to a control' },
    { '<label><div><div><input /></div></div>Name</label>', message = 'label is not tied to a control' },
    { '<label htmlFor="name" />', message = 'label has no text a screen reader can announce' },
    { '<label><input /></label>', message = 'label has no text a screen reader can announce' },
    { '<label>   </label>', message = 'label has no text a screen reader can announce' },
    { '<label><span><b><i>Name</i></b></span><input /></label>', message = 'label has no text' },
  })

  describe('label-has-associated-control options', function()
    it('takes `controlComponents`, `labelAttributes`, `depth` and `assert`', function()
      local r = 'label-has-associated-control'
      assert.equal(0, #run(r, '<label>Name <Input /></label>', options(r, { controlComponents = { 'Input' } })))
      assert.equal(0, #run(r, '<label htmlFor="n" label="Name" />', options(r, { labelAttributes = { 'label' } })))
      assert.equal(0, #run(r, '<label htmlFor="n"><span><b><i>Name</i></b></span></label>', options(r, { depth = 4 })))
      assert.equal(1, #run(r, '<label htmlFor="n">Name</label>', options(r, { assert = 'nesting' })))
      assert.equal(1, #run(r, '<label>Name <input /></label>', options(r, { assert = 'htmlFor' })))
      assert.equal(1, #run(r, '<label htmlFor="n">Name</label>', options(r, { assert = 'both' })))
    end)
  end)

  cases('heading-has-content', {
    '<h1>Title</h1>',
    '<h2>{title}</h2>',
    '<h3><Trans>Title</Trans></h3>',
    '<h4 children={title} />',
    '<h5 dangerouslySetInnerHTML={{ __html: html }} />',
    '<h6 aria-hidden />',
    '<h1>\n</h1>',
    '<Heading />',
  }, {
    { '<h1 />', message = 'heading has no content a screen reader can announce' },
    { '<h2></h2>', message = 'heading has no content a screen reader can announce' },
    { '<h3><span aria-hidden /></h3>', message = 'heading has no content a screen reader can announce' },
    { '<h4>{undefined}</h4>', message = 'heading has no content a screen reader can announce' },
    { '<h5 title="x" />', message = 'heading has no content a screen reader can announce' },
    { '<h6 {...props} />', message = 'heading has no content a screen reader can announce' },
  })

  cases('aria-role', {
    '<div role="button" />',
    '<div role="button link" />',
    '<div role={role} />',
    '<div role={undefined} />',
    '<div role={open ? "x" : "y"} />',
    '<div role={`tab`} />',
    '<div role="doc-toc" />',
    '<div />',
  }, {
    { '<div role="datepicker" />', col = 6,
      message = "role holds 'datepicker', which is not a valid, non-abstract ARIA role" },
    { '<div role="range" />', col = 6, message = 'which is not a valid, non-abstract ARIA role' },
    { '<div role="" />', col = 6, message = 'which is not a valid, non-abstract ARIA role' },
    { '<div role />', col = 6, message = 'which is not a valid, non-abstract ARIA role' },
    { '<div role="Button" />', col = 6, message = 'which is not a valid, non-abstract ARIA role' },
    { '<div role="button  link" />', col = 6, message = 'which is not a valid, non-abstract ARIA role' },
    { '<div role={null} />', col = 6, message = 'which is not a valid, non-abstract ARIA role' },
    { '<Foo role="datepicker" />', col = 6, message = 'which is not a valid, non-abstract ARIA role' },
  })

  describe('aria-role options', function()
    it('takes `allowedInvalidRoles` and `ignoreNonDOM`', function()
      assert.equal(0, #run('aria-role', '<div role="datepicker" />',
        options('aria-role', { allowedInvalidRoles = { 'datepicker' } })))
      assert.equal(0, #run('aria-role', '<Foo role="datepicker" />', options('aria-role', { ignoreNonDOM = true })))
      assert.equal(1, #run('aria-role', '<div role="datepicker" />', options('aria-role', { ignoreNonDOM = true })))
    end)
  end)
end)
