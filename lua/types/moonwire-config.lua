---@meta moonwire-config
-- LuaLS annotations for the table app.lua returns (moonwire.Config) and its parts; the
-- bindings are in moonwire.lua beside it. Declarations only: the runtime never loads this file.

-- ---- configuration (app.lua) ------------------------------------------------------------------

---auth: JWT settings (a token is ?token=JWT or Authorization: Bearer JWT).
---@class moonwire.AuthConfig
---@field secret? string HMAC secret (HS*: at least 32 bytes); nil = anonymous connections only
---@field algorithm? string pinned algorithm (default "HS256"; RS256/ES256 need publicKeyFile)
---@field required? boolean refuse connections without a token (401; default false)
---@field leeway? number seconds of clock skew allowed for exp/nbf (default 30)
---@field refreshBefore? number seconds before exp the client gets auth/expiring (default 30)
---@field issuer? string required `iss`
---@field audience? string required `aud`
---@field publicKeyFile? string PEM file for RS*/ES* (relative to the app folder)

---redis: the cluster's Redis.
---@class moonwire.RedisConfig
---@field url? string redis://host:port/db (--redis); nil = single node
---@field prefix? string prefix of the runtime's own keys and channels (default "moonwire:")
---@field timeout? number seconds per command (default 5)

---database: the app's database.
---@class moonwire.DatabaseConfig
---@field url? string sqlite:PATH, sqlite::memory: or postgres://... (default sqlite:APP_DIR/data/app.db)

---rooms: room membership rules.
---@class moonwire.RoomsConfig
---@field clientCanJoinMultipleRooms? boolean false: joining a room leaves the others (default true)
---@field maxPerClient? integer rooms one client may be in (default 128)
---@field options? moonwire.RoomOption[] per-room settings; the first entry whose pattern matches a room applies

---One entry of rooms.options.
---@class moonwire.RoomOption
---@field pattern string an exact room name, or a glob where `*` matches any characters
---@field history? moonwire.RoomHistory keep the room's last messages for late joiners and reconnects
---@field presence? boolean track who is in the room (getPresence)
---@field joinLeave? boolean tell members when someone joins or leaves
---@field canJoin? false|fun(clientId: string, roomName: string, client: table): boolean|string who may join from the client side (true allows; false or a string refuses; anything else refuses "Not allowed")

---rooms.options[i].history.
---@class moonwire.RoomHistory
---@field size? integer messages kept, 1..10000 (default 100)
---@field ttl? number seconds the history lives after the room's last message (default 600)

---inactivity: closing idle clients (4408).
---@class moonwire.InactivityConfig
---@field checkInterval? number seconds between checks (default 60)
---@field maxInactive? number seconds without a message before a client is closed (default 300)

---heartbeat: protocol ping/pong.
---@class moonwire.HeartbeatConfig
---@field interval? number seconds between pings (default 25)
---@field timeout? number seconds to wait for the pong (default 10)

---cluster: presence in Redis.
---@class moonwire.ClusterConfig
---@field heartbeat? number seconds between refreshes; a worker's presence expires after 2 of them (default 5)

---limits.rate: per-connection token bucket.
---@class moonwire.RateConfig
---@field messages? number tokens refilled per `per` seconds (default 100)
---@field per? number seconds (default 1)
---@field burst? number bucket capacity, also the refusals in a row before close 4429 (default 200)

---limits: bounds on what a peer or a handler may use.
---@class moonwire.LimitsConfig
---@field maxMessageSize? integer bytes per message; over it: close 1009 (default 65536)
---@field maxFragments? integer frames per message; over it: close 1008 (default 1024)
---@field maxHeaderBytes? integer request line + headers; over it: HTTP 431 (default 8192)
---@field handshakeTimeout? number seconds for the request head (default 10)
---@field messageTimeout? number seconds to receive one message once its first byte arrived; past it: close 1008 (default 30)
---@field maxConnections? integer connections per worker, HTTP-phase ones included; past it: HTTP 503 (default: the open-file limit minus a reserve)
---@field sendQueueBytes? integer per connection; a slow consumer over it is closed with 4503 (default 1048576)
---@field rate? moonwire.RateConfig
---@field jsonDepth? integer nesting of a client's JSON (default 32)
---@field handlerTimeout? number seconds of Lua run time per handler (default 5)
---@field luaMemory? integer bytes of Lua memory per worker (default 268435456)
---@field shutdownTimeout? number seconds for a graceful shutdown (default 8)
---@field historyBytes? integer bytes of room history a worker keeps in memory (single node); past it the oldest messages of the least recently written rooms are dropped (default 67108864)

---events: hooks, all optional; each runs in its own coroutine (onAuthenticate at once); errors are logged.
---@class moonwire.EventsConfig
---@field onServerStarted? fun(mw: moonwire.Bindings) in every worker, once it is up (and Redis connected)
---@field onConnect? fun(clientId: string, client: moonwire.Client) after `connected` (and `authenticated`)
---@field onDisconnect? fun(clientId: string, code: integer, reason: string) after the client left its rooms; code 1006 when TCP dropped
---@field onJoinRoom? fun(clientId: string, roomName: string)
---@field onLeaveRoom? fun(clientId: string, roomName: string)
---@field onAuthenticate? fun(claims: table<string, any>, request: moonwire.Request): boolean|string|nil during the upgrade, with a valid token; false/nil or a string (the reason) refuses with 401

---A routes entry: maps a message type/action to any controller method.
---@class moonwire.Route
---@field type string the message's type
---@field action string the message's action
---@field controller? string controllers/<controller>.lua (default: type)
---@field method? string the method (default: action)

---A subscribers entry: a Redis channel (a `*`, `?` or `[` makes it a pattern) handled in every worker.
---@class moonwire.Subscriber
---@field channel string
---@field handler fun(channel: string, payload: string) webSocketServer sends inside reach this worker's clients only

---log: logging.
---@class moonwire.LogConfig
---@field level? "debug"|"info"|"warn"|"error" default "info" ("debug" with --dev)
---@field format? "text"|"json" default "text"

---compression: permessage-deflate (RFC 7692), negotiated with no context takeover both ways.
---@class moonwire.CompressionConfig
---@field enabled? boolean offer it to clients that ask (default false; MOONWIRE_COMPRESSION=1)
---@field threshold? integer messages shorter than this many bytes go out plain (default 256)
---@field level? integer zlib level 0..9 (default 1)

---Raw mode: receives every message unparsed (no JSON routing, no `connected` frame); answer with webSocketServer:sendRaw.
---@alias moonwire.RawHandler fun(clientId: string, payload: string, isBinary: boolean)

---The table app.lua returns (deep-merged into the defaults; flags beat environment beat app.lua).
---Durations are seconds (fractions allowed); relative paths are relative to the app folder.
---@class moonwire.ApiRateConfig
---@field requests? number API requests refilled per `per` seconds, per client address and worker (default 1000)
---@field per? number seconds (default 1)
---@field burst? number requests allowed at once (default 2000)

---@class moonwire.ApiConfig
---@field key? string the HTTP API's key, at least 16 characters (env MOONWIRE_API_KEY); nil: /api and /admin answer 404
---@field rate? moonwire.ApiRateConfig

---@class moonwire.Config
---@field host? string listen address (default "0.0.0.0")
---@field port? integer listen port (default 8080)
---@field path? string the WebSocket path, exact match (default "/ws")
---@field workers? integer|"auto" worker processes (default 1; more need Redis)
---@field routes? moonwire.Route[] type/action overrides
---@field auth? moonwire.AuthConfig
---@field redis? moonwire.RedisConfig
---@field database? moonwire.DatabaseConfig
---@field rooms? moonwire.RoomsConfig
---@field inactivity? moonwire.InactivityConfig
---@field heartbeat? moonwire.HeartbeatConfig
---@field cluster? moonwire.ClusterConfig
---@field limits? moonwire.LimitsConfig
---@field allowedOrigins? string[] allowed Origin values ("*" any); nil = any; requests without Origin are allowed
---@field trustedProxies? string[] addresses whose X-Forwarded-For is believed
---@field events? moonwire.EventsConfig
---@field subscribers? moonwire.Subscriber[] needs Redis
---@field raw? moonwire.RawHandler raw mode (binary frames accepted)
---@field dev? boolean hot reload, tracebacks in error replies, debug logs (--dev)
---@field log? moonwire.LogConfig
---@field api? moonwire.ApiConfig the HTTP API (POST /api/METHOD) and the /admin page
---@field compression? moonwire.CompressionConfig
