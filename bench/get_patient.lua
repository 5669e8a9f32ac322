-- GET /api/patients/{id}/ for random ids of the bench user's patients.
-- The requests are built once per wrk thread; each call only picks one, so
-- that the load generator spends as little of the shared CPU as it can.
local lo = tonumber(os.getenv("ID_LO"))
local hi = tonumber(os.getenv("ID_HI"))
local auth = "Bearer " .. os.getenv("TOKEN")
local requests = {}
for id = lo, hi do
  requests[#requests + 1] = wrk.format("GET", "/api/patients/" .. id .. "/", { ["Authorization"] = auth })
end
math.randomseed(os.time())
request = function()
  return requests[math.random(#requests)]
end
