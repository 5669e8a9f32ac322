-- GET of a fixed path (BENCH_PATH), authenticated.
local path = os.getenv("BENCH_PATH")
local auth = "Bearer " .. os.getenv("TOKEN")
request = function()
  return wrk.format("GET", path, { ["Authorization"] = auth })
end
