-- POST /auth/refresh, feeding each rotated refresh cookie back (one connection per thread).
-- Starting cookies come from BENCH_REFRESH_FILE, one "refresh csrf" pair per line.
local pairs_ = {}
for line in io.lines(os.getenv("BENCH_REFRESH_FILE")) do pairs_[#pairs_ + 1] = line end
local counter = 0

function setup(thread)
  counter = counter + 1
  thread:set("pair", pairs_[counter])
end

function init(args)
  refresh, csrf = pair:match("(%S+) (%S+)")
end

function request()
  return wrk.format("POST", "/auth/refresh", {
    ["Cookie"] = "refresh_token=" .. refresh .. "; csrf_token=" .. csrf,
    ["X-CSRF-Token"] = csrf,
  })
end

function response(status, headers, body)
  -- wrk keeps the last Set-Cookie header only; Tessera sets the refresh cookie last.
  -- The CSRF check compares header and cookie, so the starting pair keeps working.
  local cookie = headers["Set-Cookie"] or ""
  for value in string.gmatch(cookie, "refresh_token=([^;]+)") do refresh = value end
end
