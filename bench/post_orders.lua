-- wrk script: POST one JSON order per request, each with an item no other request used.
-- Usage: wrk ... <url> -- <run-id>
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"

local threads = 0

function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end

function init(args)
  prefix = string.format("bench-%s-%d-", args[1] or "run", tid or 0)
  counter = 0
end

function request()
  counter = counter + 1
  local body = string.format('{"item":"%s%d","quantity":%d}', prefix, counter, counter % 100 + 1)
  return wrk.format(nil, nil, nil, body)
end
