-- The project's standards: our rulepack, found in ./rulepacks by name
-- (AEGIS_PATH and the built-ins are searched too), trusted so it runs in
-- process, with one option changed.
return {
  standards = {
    rulepacks = { 'team-style' },
    trusted = { 'rulepacks' },
    rules = {
      ['team-style/max-params'] = { options = { max = 4 } },
    },
  },
}
