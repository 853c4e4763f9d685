-- wrk script: replays prepared HTTP requests (one file each: a header line set, a blank line, the
-- body), each once per thread in turn. Used for enrollments, where every request needs its own
-- session token and card signature. Files are listed in $JPKI_REQUESTS (one path per line).
local requests = {}
local counter = 0

function init(args)
  local list = assert(io.open(os.getenv("JPKI_REQUESTS"), "r"))
  local paths = {}
  for line in list:lines() do table.insert(paths, line) end
  list:close()
  -- Each wrk thread takes every n-th file so that no two threads send the same session.
  local threads = tonumber(os.getenv("JPKI_THREADS") or "1")
  local index = tonumber(os.getenv("JPKI_THREAD_INDEX") or "0")
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
    -- Out of prepared sessions: send a request that fails fast (and is excluded by the report).
    return wrk.format("GET", "/healthz")
  end
  return requests[counter]
end
