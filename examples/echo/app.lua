-- examples/echo: raw mode. Every message a client sends comes back unchanged, in a frame of the
-- same kind (text or binary): no JSON, no routing, no `connected` frame. Protocol conformance
-- suites (Autobahn's fuzzingclient, see README.md) run against this app to exercise the real
-- framing path. The limits are raised so that Autobahn's larger cases (9.*: messages up to
-- 16 MiB, 4 MiB in 64-byte fragments, 1000 messages in a row) fit; an app that serves the
-- public should keep the defaults.
local MiB = 1024 * 1024

local server -- webSocketServer; the bindings exist once the worker runs, so look it up lazily

---@type moonwire.Config
local config = {
  raw = function(clientId, payload, isBinary)
    server = server or require("moonwire").webSocketServer
    server:sendRaw(clientId, payload, isBinary)
  end,
  -- nothing is stored: keep the default SQLite file out of the app folder
  database = { url = "sqlite::memory:" },
  limits = {
    maxMessageSize = 16 * MiB,
    -- Autobahn 9.3.1 and 9.4.1 send 4 MiB in 64-byte frames: 65536 fragments plus the final
    -- (empty) frame that ends the message, so 65536 is one short
    maxFragments = 65537,
    sendQueueBytes = 32 * MiB, -- at least one whole echo of the largest message
    rate = { messages = 100000, per = 1, burst = 100000 },
  },
}

return config
