-- GET /api/patients/{id}/ for random ids of the bench user's patients.
local lo = tonumber(os.getenv("ID_LO"))
local hi = tonumber(os.getenv("ID_HI"))
local auth = "Bearer " .. os.getenv("TOKEN")
math.randomseed(os.time())
request = function()
  return wrk.format("GET", "/api/patients/" .. math.random(lo, hi) .. "/", { ["Authorization"] = auth })
end
