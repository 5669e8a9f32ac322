-- GET /api/patients/{id}/doctors/ for random patients of the bench user.
local lo = tonumber(os.getenv("ID_LO"))
local hi = tonumber(os.getenv("ID_HI"))
local auth = "Bearer " .. os.getenv("TOKEN")
math.randomseed(os.time() + 1)
request = function()
  return wrk.format("GET", "/api/patients/" .. math.random(lo, hi) .. "/doctors/", { ["Authorization"] = auth })
end
