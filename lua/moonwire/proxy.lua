-- moonwire.proxy: the client's address behind a reverse proxy. Only a peer listed
-- in trustedProxies (an IP, or an IPv4 CIDR such as 10.0.0.0/8) is believed about
-- X-Forwarded-For; the client is the right-most address in that header that is not itself a
-- trusted proxy (the left part can be forged by the client).
local M = {}

local function ipv4_number(ip)
  local a, b, c, d = ip:match("^(%d+)%.(%d+)%.(%d+)%.(%d+)$")
  if not a then return nil end
  a, b, c, d = tonumber(a), tonumber(b), tonumber(c), tonumber(d)
  if a > 255 or b > 255 or c > 255 or d > 255 then return nil end
  return ((a * 256 + b) * 256 + c) * 256 + d
end

-- Whether ip (no port) matches one entry: the same text, or inside an IPv4 CIDR.
local function matches(entry, ip)
  if entry == ip then return true end
  local net, bits = entry:match("^([%d%.]+)/(%d+)$")
  if not net then return false end
  local n, x = ipv4_number(net), ipv4_number(ip)
  bits = tonumber(bits)
  if not n or not x or bits > 32 then return false end
  local size = 2 ^ (32 - bits)
  return math.floor(n / size) == math.floor(x / size)
end

local function trusted(list, ip)
  for _, entry in ipairs(list) do
    if matches(entry, ip) then return true end
  end
  return false
end

-- "ip:port", "[v6]:port" or "v6:port" as the runtime writes peers -> ip
local function host_of(remote)
  local v6 = remote:match("^%[(.-)%]:%d+$")
  if v6 then return v6 end
  local v4 = remote:match("^(%d+%.%d+%.%d+%.%d+):%d+$")
  if v4 then return v4 end
  return remote:match("^(.*):%d+$") or remote
end

-- Returns the client's address for a request whose TCP peer is `remote`, or nil to keep it.
function M.client_address(list, remote, forwarded_for)
  if type(list) ~= "table" or #list == 0 or type(forwarded_for) ~= "string" or remote == nil then
    return nil
  end
  if not trusted(list, host_of(remote)) then return nil end
  local hops = {}
  for hop in forwarded_for:gmatch("[^,]+") do
    hop = hop:match("^%s*(.-)%s*$")
    if hop ~= "" then hops[#hops + 1] = hop end
  end
  for i = #hops, 1, -1 do
    if not trusted(list, hops[i]) then return hops[i] end
  end
  return hops[1]
end

return M
