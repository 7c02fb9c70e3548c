-- The gateway's settings for this project: which team to bill, and what its
-- models cost (USD per 1M tokens), since the built-in table knows only the
-- providers' own prices.
return {
  providers = {
    gateway = { options = { team = 'parser' } },
  },
  prices = {
    gateway = { ['gpt-5.4'] = { input = 2.5, cached_input = 0.25, output = 15 } },
  },
}
