-- order: records the order in which messages reach the controller.
local Order = {}
local seen = {}

function Order:add(clientId, data)
  seen[#seen + 1] = data
  return data
end

function Order:list(clientId, data)
  return seen
end

return Order
