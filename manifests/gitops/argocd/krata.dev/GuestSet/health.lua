-- Argo CD health of a krata GuestSet (krata.dev/v1alpha1), from its controller's kstatus conditions
-- (workloads/guestset/): Ready when every replica is of the current template and available, Stalled
-- when it cannot progress without a change. Lua 5.1 (Argo CD's gopher-lua); only obj.
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

local status = obj.status
if status == nil or status.conditions == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the GuestSet's controller"
  return hs
end

local generation = obj.metadata.generation
if generation ~= nil and (status.observedGeneration == nil or status.observedGeneration < generation) then
  hs.status = "Progressing"
  hs.message = "Waiting for generation " .. generation .. " to be observed"
  return hs
end

local stalled = condition(status, "Stalled")
if stalled ~= nil and stalled.status == "True" then
  hs.status = "Degraded"
  hs.message = (stalled.reason or "Stalled") .. ": " .. (stalled.message or "")
  return hs
end

local ready = condition(status, "Ready")
if ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = ready.message or ""
  return hs
end

hs.status = "Progressing"
local reconciling = condition(status, "Reconciling")
local why = reconciling or ready
if why ~= nil then
  hs.message = (why.reason or "") .. ": " .. (why.message or "")
else
  hs.message = "Waiting for replicas"
end
return hs
