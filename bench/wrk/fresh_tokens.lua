-- GET the path with a different token each request (first-seen tokens),
-- cycling through the file named by BENCH_TOKENS_FILE from BENCH_TOKENS_OFFSET:
-- bench/http_load.py moves the offset past what earlier runs sent, so that no
-- run re-sends a token a worker has already cached.
local tokens = {}
for line in io.lines(os.getenv("BENCH_TOKENS_FILE")) do tokens[#tokens + 1] = line end
local start = tonumber(os.getenv("BENCH_TOKENS_OFFSET") or "0")
local offset = start
local i = 0

function setup(thread)
  thread:set("offset", offset)
  offset = offset + math.floor(#tokens / 4)
end

function init(args)
  i = offset or start
end

function request()
  i = (i % #tokens) + 1
  return wrk.format("GET", nil, {["Authorization"] = "Bearer " .. tokens[i]})
end
