-- wrk script: replays prepared HTTP requests (one file each: a header line set, a blank line, the
-- body), each once, in turn; run it with one wrk thread (-t1). Used for enrollments, where every
-- request needs its own session token and card signature. Files are listed in $JPKI_REQUESTS.
local requests = {}
local counter = 0

function init(args)
  local list = assert(io.open(os.getenv("JPKI_REQUESTS"), "r"))
  local paths = {}
  for line in list:lines() do table.insert(paths, line) end
  list:close()
  for i, path in ipairs(paths) do
    local f = assert(io.open(path, "rb"))
    local token = f:read("*l")
    local content_type = f:read("*l")
    local body = f:read("*a")
    f:close()
    table.insert(requests, wrk.format("POST", "/v1/enrollments",
      { ["Authorization"] = "Bearer " .. token, ["Content-Type"] = content_type }, body))
  end
end

function request()
  counter = counter + 1
  if counter > #requests then
    -- Out of prepared sessions: stop this thread (wrk reports over the time actually run).
    wrk.thread:stop()
    return requests[#requests]
  end
  return requests[counter]
end
