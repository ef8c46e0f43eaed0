--- imgbuild.tzdata: the build machine's time zone database, for images whose
--- programs load zones by name (Go's time.LoadLocation).
---
---   local tzdata = require "imgbuild.tzdata"
---   img:copy(tzdata.zoneinfo, "/usr/share/zoneinfo/")
---
--- A Go program can instead embed it: import _ "time/tzdata" (about 450 kB).
local _, internal = ... -- the engine's private functions (see lua/imgbuild/dsl.lua)

local tzdata = {}

--- The zoneinfo folder (Debian's tzdata package).
tzdata.zoneinfo = internal.host_path("imgbuild.tzdata zoneinfo", { "/usr/share/zoneinfo" })

return tzdata
