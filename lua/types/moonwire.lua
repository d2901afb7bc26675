---@meta moonwire
-- LuaLS (lua-language-server) type annotations for moonwire apps: the bindings a controller's
-- `self` and `require("moonwire")` give, the config table app.lua returns, hooks, jobs and the
-- records the bindings return (the app.lua config table: moonwire-config.lua). Declarations only: the runtime never loads this file (the real
-- bindings are built in lua/moonwire/runtime.lua). Point your editor's `workspace.library` at
-- this folder (README "Editor setup (types)").
--
-- Conventions: "yields" = waits for I/O inside a handler, coroutine or timer callback without
-- blocking the worker (raises when called where it cannot yield, e.g. inside string.gsub);
-- I/O failures return `nil, err`; misuse (wrong argument types) raises.

-- ---- shared shapes --------------------------------------------------------------------------

---A message: a table (encoded to JSON once) or a string that already holds JSON; sent as one text frame.
---@alias moonwire.Message table|string

---Who a connection authenticated as (nil for anonymous connections).
---@class moonwire.User
---@field userId? integer|string the token's `sub`: a number when it is an integer a double holds exactly, else the string
---@field payload table<string, any> every claim of the token

---A client record: a fresh copy, changing it changes nothing on the server.
---@class moonwire.Client
---@field clientId string opaque, URL-safe, unique across the cluster
---@field user? moonwire.User nil for an anonymous connection
---@field rooms string[] the rooms it is in
---@field metadata table<string, any> values set with webSocketServer:updateClient
---@field connectedAt number milliseconds since the epoch
---@field lastActivity? number milliseconds since the epoch of its last message; nil for a client of another worker
---@field workerId string the worker it is connected to
---@field remoteAddress? string the peer's "ip:port"

---This worker's counters (webSocketServer:stats()).
---@class moonwire.Stats
---@field connections integer WebSocket clients connected to this worker
---@field rooms integer rooms with members on this worker
---@field workerId string this worker's id
---@field messagesIn number messages received by this worker since it started
---@field messagesOut number messages sent by this worker since it started

---Which worker runs this code.
---@class moonwire.Worker
---@field id string unique in the cluster
---@field index integer 0 .. count-1 on this host (index 0: once-per-host work)
---@field count integer workers on this host
---@field tag string the 8-character prefix of this worker's clientIds

---The upgrade request an `events.onAuthenticate` hook sees (the token itself is left out).
---@class moonwire.Request
---@field path string the URL path
---@field query string the query string without its `token=` parameter
---@field headers table<string, string> lower-case name -> value (no Authorization header)
---@field remoteAddress string the peer's "ip:port"
---@field origin? string the Origin header, nil when absent

---An error a handler raises to answer the client with `{"error": message, "code": code}`: `error({code = "invalid", message = "..."})`.
---@class moonwire.CodedError
---@field code string|number
---@field message string

-- ---- webSocketServer ------------------------------------------------------------------------

---Sends messages and manages clients and rooms; every call works across all workers and hosts of the cluster.
---@class moonwire.WebSocketServer
local WebSocketServer = {}

---Sends msg to one client, wherever it is connected.
---@param clientId string
---@param msg moonwire.Message
---@return boolean sent true when queued for a local client or handed on to the client's worker
function WebSocketServer:sendMessageToClient(clientId, msg) end

---Sends msg to every connected client of the cluster, except opts.excludeClientId.
---@param msg moonwire.Message
---@param opts? {excludeClientId?: string}
---@return integer count local recipients (other workers deliver their own)
function WebSocketServer:sendMessageToAll(msg, opts) end

---Sends msg to every member of room, except opts.excludeClientId.
---@param room string
---@param msg moonwire.Message
---In a history room (rooms.options) msg must be a JSON object (table or text): members get it with "room" and "offset" added.
---@param opts? {excludeClientId?: string}
---@return integer count local recipients (other workers deliver their own)
function WebSocketServer:sendMessageToRoom(room, msg, opts) end

---Sends msg to every connection of a user (userId as in client.user.userId).
---@param userId integer|string
---@param msg moonwire.Message
---@return integer count local recipients (other workers deliver their own)
function WebSocketServer:sendMessageToUser(userId, msg) end

---Raw mode (app.lua `raw`): sends payload unchanged as one text frame (isBinary false/nil) or binary frame.
---A binary frame reaches local clients only.
---@param clientId string
---@param payload string
---@param isBinary? boolean
---@return boolean sent true when queued (or, for text, handed on to the client's worker)
function WebSocketServer:sendRaw(clientId, payload, isBinary) end

---@class moonwire.HistoryPosition
---@field offset integer the last offset the client has been sent (0 before the room's first message)
---@field epoch string the room history's epoch
---@field recovered? boolean with opts.since: whether the missed messages were replayed

---Adds the client to a room (fires events.onJoinRoom). For another worker's client: sent there, returns true.
---In a history room the second result is the client's position; opts.since = {offset, epoch} replays what it missed
---(waits with Redis).
---@param clientId string
---@param room string 1-255 bytes, no NUL
---@param opts? {since?: {offset: integer, epoch: string}}
---@return boolean ok
---@return string|moonwire.HistoryPosition|nil reason why not ("Room name is required", "Too many rooms (max N)", "Unknown client", "Invalid since", ...), or the position in a history room
function WebSocketServer:joinRoom(clientId, room, opts) end

---@class moonwire.History
---@field epoch string
---@field offset integer the room's last offset
---@field messages {offset: integer, message: table}[] oldest first

---The kept messages of a history room after opts.since (default 0), at most opts.limit (default 100); waits with Redis.
---Raises for a room without history.
---@param room string
---@param opts? {since?: integer, limit?: integer}
---@return moonwire.History? history
---@return string? err set during a Redis outage
function WebSocketServer:getHistory(room, opts) end

---@class moonwire.PresenceEntry
---@field clientId string
---@field userId? string|integer nil for an anonymous client
---@field joinedAt string ISO 8601 (UTC, milliseconds)

---@class moonwire.Presence
---@field count integer members across the cluster
---@field users integer distinct userIds (each anonymous client counts as one)
---@field clients moonwire.PresenceEntry[] oldest joiner first (at most opts.limit)
---@field truncated? boolean true when opts.limit left members out of clients

---Who is in a room with `presence = true`, across the cluster (one Redis round trip; waits with Redis).
---Raises for a room without presence.
---@param room string
---@param opts? {limit?: integer} caps `clients` (count and users stay exact)
---@return moonwire.Presence? presence
---@return string? err set during a Redis outage
function WebSocketServer:getPresence(room, opts) end

---Removes the client from a room (fires events.onLeaveRoom).
---@param clientId string
---@param room string
---@return boolean left true when it was a member (or the call was sent to another worker)
function WebSocketServer:leaveRoom(clientId, room) end

---Removes the client from every room.
---@param clientId string
---@return integer count rooms left (0 for another worker's client: the count is not known yet)
function WebSocketServer:leaveAllRooms(clientId) end

---The client's record wherever it is connected; may yield (Redis) for another worker's client.
---@param clientId string
---@return moonwire.Client? client nil when not connected
---@return string? err set during a Redis outage
function WebSocketServer:getClient(clientId) end

---Sets client.metadata[key] = value (nil removes it), replicated to the cluster.
---@param clientId string
---@param key string
---@param value any must be encodable as JSON
---@return boolean ok false for an unknown client
function WebSocketServer:updateClient(clientId, key, value) end

---The clientIds in a room across the cluster; may yield (Redis).
---@param room string
---@return string[]? clientIds
---@return string? err set during a Redis outage
function WebSocketServer:getRoomClients(room) end

---The names of the rooms that have members across the cluster; may yield (Redis).
---@return string[]? rooms
---@return string? err set during a Redis outage
function WebSocketServer:getRooms() end

---Connected clients across the cluster (the caller included); may yield (Redis).
---@return integer? count
---@return string? err set during a Redis outage
function WebSocketServer:clientCount() end

---Closes a client's connection with a close code (1000 or 3000-4999; other codes raise).
---@param clientId string
---@param code? integer default 1000
---@param reason? string default ""
---@return boolean ok true when it was connected here (or the request was sent to its worker)
function WebSocketServer:disconnectClient(clientId, code, reason) end

---This worker's counters.
---@return moonwire.Stats
function WebSocketServer:stats() end

-- ---- redis ----------------------------------------------------------------------------------

---Redis on the worker's shared connection; nil without --redis. Names are used as given (no prefix).
---@class moonwire.Redis
local Redis = {}

---Runs a command; yields until the reply. Blocking/subscribing commands and MULTI/EXEC/WATCH raise.
---Replies: status/bulk -> string, integer -> number, nil -> nil, array -> table (cjson.null for nil elements).
---@async
---@param cmd string
---@param ... string|number
---@return any reply nil for a nil reply or on failure
---@return string? err the error reply, a timeout or a connection failure
function Redis:call(cmd, ...) end

---PUBLISH channel message; yields.
---@async
---@param channel string
---@param message string
---@return integer? receivers
---@return string? err
function Redis:publish(channel, message) end

-- ---- timer ----------------------------------------------------------------------------------

---Timers; each callback runs in its own coroutine (it may use yielding bindings).
---@class moonwire.Timer
local Timer = {}

---Runs fn every `seconds` seconds (fractions allowed) until handle:stop().
---@param seconds number >= 0
---@param fn fun()
---@return moonwire.TimerHandle
function Timer:every(seconds, fn) end

---Runs fn once after `seconds` seconds, unless handle:stop() comes first.
---@param seconds number >= 0
---@param fn fun()
---@return moonwire.TimerHandle
function Timer:after(seconds, fn) end

---Pauses the calling handler for `seconds` seconds; yields (the worker keeps serving).
---@async
---@param seconds number >= 0
function Timer:sleep(seconds) end

---A running timer.
---@class moonwire.TimerHandle
local TimerHandle = {}

---Stops the timer; stopping it again does nothing.
function TimerHandle:stop() end

-- ---- database -------------------------------------------------------------------------------

---A database row: column name -> value (NULL columns are absent).
---@alias moonwire.Row table<string, any>

---The result of exec.
---@class moonwire.ExecResult
---@field changes integer rows changed
---@field lastInsertId? integer|string SQLite: the rowid; PostgreSQL: the first column of the first row returned (INSERT ... RETURNING id), else nil

---The app's database (SQLite or PostgreSQL); `?` placeholders, values bound (nil/cjson.null as NULL).
---@class moonwire.Database
local Database = {}

---Runs a query; yields.
---@async
---@param sql string
---@param ... any bound to the `?` placeholders
---@return moonwire.Row[]? rows
---@return string? err the database's message
function Database:query(sql, ...) end

---Runs a statement; yields.
---@async
---@param sql string
---@param ... any bound to the `?` placeholders
---@return moonwire.ExecResult? result
---@return string? err the database's message
function Database:exec(sql, ...) end

---Runs fn(tx) between BEGIN and COMMIT; yields. Rolls back and raises fn's error again when fn raises.
---The coroutine's own database:query/exec calls inside fn run in the transaction too. Transactions do not nest (raises).
---@async
---@param fn fun(tx: moonwire.Transaction): any
---@return any ... what fn returned, or nil, err when BEGIN or COMMIT failed
function Database:transaction(fn) end

---Which backend serves the database.
---@return "sqlite"|"postgres"|nil backend
---@return string? err set when the database URL is not usable
function Database:backend() end

---A transaction in progress (valid only inside database:transaction's fn; raises afterwards).
---@class moonwire.Transaction
local Transaction = {}

---Like database:query, inside the transaction; yields.
---@async
---@param sql string
---@param ... any
---@return moonwire.Row[]? rows
---@return string? err
function Transaction:query(sql, ...) end

---Like database:exec, inside the transaction; yields.
---@async
---@param sql string
---@param ... any
---@return moonwire.ExecResult? result
---@return string? err
function Transaction:exec(sql, ...) end

-- ---- queue ----------------------------------------------------------------------------------

---Options of queue:add.
---@class moonwire.QueueOptions
---@field delay? number seconds before the first run (default 0)
---@field attempts? integer runs before the job fails (default 3)
---@field backoff? number seconds before the first retry, doubling each retry (default 1)

---Durable background jobs (Redis Streams with --redis, else a table in the database).
---@class moonwire.Queue
local Queue = {}

---Stores a job for jobs/<name>.lua; yields until it is stored.
---@async
---@param name string 1-64 letters, digits, '_', '.' or '-'
---@param data any must be encodable as JSON; data.clientId gets one queue/completed or queue/failed message
---@param opts? moonwire.QueueOptions
---@return string? jobId
---@return string? err when the store is unreachable
function Queue:add(name, data, opts) end

---A job as its processor receives it.
---@class moonwire.Job
---@field id string
---@field queue string the queue's name (= the jobs/ file name)
---@field data any what queue:add stored (nil for nil)
---@field attempt integer 1 on the first run

---A job processor: its return value completes the job (sent to data.clientId as `result`); an error fails the attempt.
---@alias moonwire.JobProcessor fun(job: moonwire.Job, mw: moonwire.Bindings): any

---What jobs/NAME.lua returns: a moonwire.JobProcessor, or this table.
---@class moonwire.JobDefinition
---@field process moonwire.JobProcessor
---@field concurrency? integer jobs of this queue running at once in each worker (default 1)
---@field timeout? number seconds a run may take before it counts as a failed attempt (default 60)

-- ---- log, clock -----------------------------------------------------------------------------

---The runtime's logger (text or JSON lines on stderr; --log-level applies).
---@class moonwire.Log
local Log = {}

---Logs at debug level (shown with --dev or --log-level debug).
---@param message any converted with tostring
---@param fields? table<string, any>
function Log:debug(message, fields) end

---Logs at info level.
---@param message any converted with tostring
---@param fields? table<string, any>
function Log:info(message, fields) end

---Logs at warn level.
---@param message any converted with tostring
---@param fields? table<string, any>
function Log:warn(message, fields) end

---Logs at error level.
---@param message any converted with tostring
---@param fields? table<string, any>
function Log:error(message, fields) end

---Wall-clock time.
---@class moonwire.Clock
local Clock = {}

---Milliseconds since the epoch (os.time() has only seconds).
---@return number ms
function Clock:now() end

-- ---- controllers and the module -------------------------------------------------------------

---What `require("moonwire")` returns, and what a controller's `self` gives.
---@class moonwire.Bindings
---@field webSocketServer moonwire.WebSocketServer
---@field redis? moonwire.Redis nil without --redis
---@field queue moonwire.Queue
---@field database moonwire.Database
---@field timer moonwire.Timer
---@field log moonwire.Log
---@field clock moonwire.Clock
---@field config moonwire.Config the merged configuration (every default filled in)
---@field worker moonwire.Worker
---@field emptyArray lightuserdata encodes as the JSON array `[]` (an empty Lua table encodes as `{}`)
---@field array fun(t: table): table marks t to encode as a JSON array (`[]` when empty) and returns it

---A controller (controllers/<type>.lua): each public method is an action. Declare yours as
---`---@class Chat: moonwire.Controller` above `local Chat = {}` so `self` completes.
---@class moonwire.Controller: moonwire.Bindings

---An action: `function Chat:send(clientId, data)`; its return value is the reply's `response`
---(nil: no `response`); raise a moonwire.CodedError to answer with an error frame.
---@alias moonwire.Action fun(self: moonwire.Controller, clientId: string, data: any): any

---@type moonwire.Bindings
local moonwire = {}

return moonwire
