-- Argo CD health of a krata XenHost (krata.dev/v1alpha1): its Ready condition, which the operator
-- keeps from the node agent's heartbeats (True while they come, Unknown once the last is too old).
-- Lua 5.1 (Argo CD's gopher-lua); only obj.
local hs = {}

local ready = nil
if obj.status ~= nil and obj.status.conditions ~= nil then
  for _, c in ipairs(obj.status.conditions) do
    if c.type == "Ready" then
      ready = c
    end
  end
end

if ready == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the node agent's first heartbeat"
  return hs
end

local message = ready.message or ready.reason or ""
if ready.status == "True" then
  hs.status = "Healthy"
  if obj.spec ~= nil and obj.spec.unschedulable then
    message = message .. " (cordoned: no new Guests are placed here)"
  end
else
  -- A host whose agent does not report runs no new Guests, and its Guests' state is unknown.
  hs.status = "Degraded"
end
hs.message = message
return hs
