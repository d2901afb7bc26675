-- moonwire.auth: who may open a WebSocket. The C side has checked the token's signature and
-- pinned its algorithm (runtime/mw_jwt.c, libjwt); the claims are checked here: exp required,
-- nbf, leeway, iss and aud exact, sub -> userId. Then events.onAuthenticate may still refuse.
-- Nothing here ever logs or returns the token itself.
local json = require "moonwire.json"

local M = {}

local null = json.null
local floor = math.floor
local MAX_EXACT = 9007199254740992 -- 2^53: integers a double holds exactly

-- sub -> userId: a number when it is a canonical integer a double holds exactly, else the string.
function M.user_id(sub)
  if type(sub) == "number" then
    if sub == floor(sub) and sub >= -MAX_EXACT and sub <= MAX_EXACT then return sub end
    return tostring(sub)
  end
  if type(sub) ~= "string" then return nil end
  if sub:match("^%-?[1-9]%d*$") or sub == "0" then
    local n = tonumber(sub)
    if n and n > -MAX_EXACT and n < MAX_EXACT then return n end
  end
  return sub
end

-- The key of the per-user index: the same for the number 42 and the sub "42".
function M.user_key(userId)
  if type(userId) == "number" then return string.format("%.0f", userId) end
  if type(userId) == "string" then return userId end
  return nil
end

local function audience_matches(aud, want)
  if type(aud) == "string" then return aud == want end
  if type(aud) == "table" then
    for _, a in ipairs(aud) do if a == want then return true end end
  end
  return false
end

-- Checks decoded claims against the auth config at time now (seconds). Returns true or
-- false, reason.
function M.check_claims(claims, auth, now)
  local leeway = auth.leeway or 0
  local exp = claims.exp
  if type(exp) ~= "number" then return false, "token has no exp claim" end
  if now > exp + leeway then return false, "token expired" end
  local nbf = claims.nbf
  if nbf ~= nil and nbf ~= null then
    if type(nbf) ~= "number" then return false, "token nbf claim is not a number" end
    if now + leeway < nbf then return false, "token not valid yet (nbf)" end
  end
  if auth.issuer and claims.iss ~= auth.issuer then return false, "token issuer does not match" end
  if auth.audience and not audience_matches(claims.aud, auth.audience) then
    return false, "token audience does not match"
  end
  return true
end

local function origin_allowed(list, origin)
  if not list or not origin then return true end -- no Origin: not a browser
  for _, o in ipairs(list) do
    if o == origin or o == "*" then return true end
  end
  return false
end

-- Decides on one upgrade. request = {path, query, headers, remoteAddress, origin}.
-- Returns status (101, 401, 403), reason, user ({userId, payload} or nil), expiry (ms or nil).
-- A numeric sub reaches here only as an integer of magnitude <= 2^53 (runtime/mw_jwt.c refuses
-- any other non-string sub), so it is exact as a double.
function M.admit(config, request, claims_json, token_error, has_token, now_ms, run_hook)
  if not origin_allowed(config.allowedOrigins, request.origin) then
    return 403, "Origin not allowed"
  end
  local auth = config.auth
  if not has_token then
    if auth.required then return 401, "A token is required (?token= or Authorization: Bearer)" end
    return 101
  end
  if token_error then return 401, "Invalid token: " .. token_error end
  local ok, claims = pcall(json.decode, claims_json)
  if not ok or type(claims) ~= "table" then return 401, "Invalid token: claims are not a JSON object" end
  local good, why = M.check_claims(claims, auth, now_ms / 1000)
  if not good then return 401, "Invalid token: " .. why end
  local hook = config.events and config.events.onAuthenticate
  if hook then
    local verdict, err = run_hook(hook, claims, request)
    if err then return 401, "Authentication refused" end
    if verdict == false or verdict == nil then return 401, "Authentication refused" end
    if type(verdict) == "string" then return 401, verdict end
  end
  local user = { userId = M.user_id(claims.sub), payload = claims }
  return 101, nil, user, (claims.exp + (auth.leeway or 0)) * 1000
end

return M
