-- wrk script for bench/server.py's range16 tests: Range requests of CHUNK bytes, one chunk
-- after the other through an image of SIZE bytes, as a device downloads it; each connection
-- starts at another chunk.  wrk -s bench/range16.lua URL -- SIZE CHUNK
local size, chunk, chunks
local counter = 0

function init(args)
  size = tonumber(args[1])
  chunk = tonumber(args[2] or 16384)
  chunks = math.floor((size + chunk - 1) / chunk)
end

function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
end

local next_chunk = -1

function request()
  if next_chunk < 0 then
    next_chunk = (id or 0) * 7 % chunks
  end
  local first = next_chunk * chunk
  local last = math.min(first + chunk, size) - 1
  next_chunk = (next_chunk + 1) % chunks
  return wrk.format(nil, nil, { Range = "bytes=" .. first .. "-" .. last })
end
