-- echo: returns what it gets; used by every test as the "still served" probe.
local Echo = {}

Echo.notAFunction = 42

function Echo:say(clientId, data)
  return data
end

function Echo:nothing(clientId, data)
  return nil
end

-- what the controller saw as `data` ("nil" for absent or JSON null)
function Echo:kind(clientId, data)
  return { kind = type(data) }
end

function Echo:whoami(clientId, data)
  return clientId
end

function Echo:_private(clientId, data)
  return "private"
end

return Echo
