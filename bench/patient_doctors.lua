-- GET /api/patients/{id}/doctors/ for random patients of the bench user
-- (requests built once per wrk thread, as in get_patient.lua).
local lo = tonumber(os.getenv("ID_LO"))
local hi = tonumber(os.getenv("ID_HI"))
local auth = "Bearer " .. os.getenv("TOKEN")
local requests = {}
for id = lo, hi do
  requests[#requests + 1] = wrk.format("GET", "/api/patients/" .. id .. "/doctors/", { ["Authorization"] = auth })
end
math.randomseed(os.time() + 1)
request = function()
  return requests[math.random(#requests)]
end
