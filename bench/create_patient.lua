-- POST /api/patients/ with a realistic body.
local auth = "Bearer " .. os.getenv("TOKEN")
local genders = { "Male", "Female", "Other", "Unknown" }
local n = 0
request = function()
  n = n + 1
  local body = string.format('{"name":"Bench Patient %d","age":%d,"gender":"%s"}', n, n % 100, genders[n % 4 + 1])
  return wrk.format("POST", "/api/patients/", { ["Authorization"] = auth, ["Content-Type"] = "application/json" }, body)
end
