-- POST a correct login; every request is a new session.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"username": "bench", "password": "' .. os.getenv("BENCH_PASSWORD") .. '"}'
