-- GET the path with one bearer token (reused token), read from BENCH_TOKEN.
local token = os.getenv("BENCH_TOKEN")
wrk.headers["Authorization"] = "Bearer " .. token
