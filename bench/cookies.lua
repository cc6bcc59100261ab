-- wrk script: each request signs in as the next of many users, so a signed-in
-- figure is many sessions, accounts and plans, not one hot row.
--   wrk -s bench/cookies.lua URL -- COOKIES_FILE   (one "name=value" per line)
local cookies = {}
local n = 0

function init(args)
  for line in io.lines(args[1]) do
    if #line > 0 then cookies[#cookies + 1] = line end
  end
  assert(#cookies > 0, "no cookies in " .. args[1])
  -- Threads start at different users.
  n = math.random(#cookies)
end

function request()
  n = n % #cookies + 1
  return wrk.format("GET", nil, { ["Cookie"] = cookies[n] })
end
