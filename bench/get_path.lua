-- GET of a fixed path (BENCH_PATH), authenticated. No request() function:
-- wrk then sends one pre-built request, the cheapest load it can make.
wrk.method = "GET"
wrk.path = os.getenv("BENCH_PATH")
wrk.headers["Authorization"] = "Bearer " .. os.getenv("TOKEN")
