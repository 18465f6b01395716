-- Argo CD health of a krata Guest (krata.dev/v1alpha1), from the status the node agent and the
-- operator write (crds/README.md, "Status conventions"). Lua 5.1 (Argo CD's gopher-lua); only obj.
local hs = {}

local function condition(status, kind)
  if status.conditions == nil then
    return nil
  end
  for _, c in ipairs(status.conditions) do
    if c.type == kind then
      return c
    end
  end
  return nil
end

local function says(reason, message)
  if message ~= nil and message ~= "" then
    if reason ~= nil and reason ~= "" and reason ~= message then
      return reason .. ": " .. message
    end
    return message
  end
  return reason or ""
end

local status = obj.status
if status == nil or status.phase == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the Guest to be placed"
  return hs
end

-- A status about an older spec says nothing about this one.
local generation = obj.metadata.generation
if generation ~= nil and status.observedGeneration ~= nil and status.observedGeneration < generation then
  hs.status = "Progressing"
  hs.message = "Waiting for generation " .. generation .. " to be observed (status is of " .. status.observedGeneration .. ")"
  return hs
end

-- Stalled: no retry helps until the spec or the host's policy changes (InvalidSpec, HostPortNotAllowed, ...).
local stalled = condition(status, "Stalled")
if stalled ~= nil and stalled.status == "True" then
  hs.status = "Degraded"
  hs.message = says(stalled.reason, stalled.message)
  return hs
end

if status.phase == "Succeeded" then
  hs.status = "Healthy"
  hs.message = says(status.reason or "Completed", status.message)
  return hs
end

if status.phase == "Failed" or status.reason == "CrashLoopBackOff" then
  hs.status = "Degraded"
  hs.message = says(status.reason or status.phase, status.message)
  return hs
end

-- The Guest's host stopped reporting: what the guest does is not known.
if status.phase == "Unknown" then
  hs.status = "Unknown"
  local ready = condition(status, "Ready")
  hs.message = ready and says(ready.reason, ready.message) or "The node agent is not reporting"
  return hs
end

local ready = condition(status, "Ready")
if status.phase == "Running" and ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = says(ready.reason, ready.message)
  return hs
end

-- Pending, Creating, Terminating, or Running but not Ready yet (probes).
hs.status = "Progressing"
local reconciling = condition(status, "Reconciling")
if status.reason ~= nil or status.message ~= nil then
  hs.message = status.phase .. ": " .. says(status.reason, status.message)
elseif reconciling ~= nil and reconciling.status == "True" then
  hs.message = status.phase .. ": " .. says(reconciling.reason, reconciling.message)
elseif ready ~= nil then
  hs.message = status.phase .. ": " .. says(ready.reason, ready.message)
else
  hs.message = status.phase
end
return hs
