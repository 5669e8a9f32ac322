-- POST /api/auth/login/ with the bench user's credentials.
local body = string.format('{"username":"%s","password":"%s"}', os.getenv("BENCH_USER"), os.getenv("BENCH_PASSWORD"))
request = function()
  return wrk.format("POST", "/api/auth/login/", { ["Content-Type"] = "application/json" }, body)
end
