-- fail: the three ways a controller can raise.
local Fail = {}

function Fail:coded(clientId, data)
  error({ code = "bad_input", message = "Nope" })
end

function Fail:explode(clientId, data)
  error("boom")
end

function Fail:nocode(clientId, data)
  error({ message = "leaky detail /etc/secret-path", detail = "internal-detail" })
end

return Fail
