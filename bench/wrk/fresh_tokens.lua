-- GET the path with a different token each request (first-seen tokens),
-- cycling through the file named by BENCH_TOKENS_FILE.
local tokens = {}
for line in io.lines(os.getenv("BENCH_TOKENS_FILE")) do tokens[#tokens + 1] = line end
local i = 0
local offset = 0

function setup(thread)
  thread:set("offset", offset)
  offset = offset + math.floor(#tokens / 4)
end

function init(args)
  i = offset or 0
end

function request()
  i = (i % #tokens) + 1
  return wrk.format("GET", nil, {["Authorization"] = "Bearer " .. tokens[i]})
end
