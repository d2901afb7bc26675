-- controllers/auth.lua: the built-in `auth` message type: refresh, a new token for the same
-- subject without reconnecting (docs/reference.md, "Token refresh"). An app controller named
-- auth replaces this one.
local Auth = {}

--- {"token": JWT} -> {"success": true, "expiresAt": MS}; error frames "Invalid token"
--- (unauthorized), "Token subject mismatch" (forbidden), "Not authenticated" (unauthorized).
function Auth:refresh(clientId, data)
  local token = type(data) == "table" and data.token or nil
  return require("moonwire.hooks").refresh(clientId, token)
end

return Auth
