--- imgbuild.ci: where the build runs, for tags and branch-dependent flows. Also
--- the global `ci`.
---
---   push(app, "registry.example.com/app:" .. ci.branch .. "_" .. ci.short_sha)
---   if ci.branch == "main" then push(app, "registry.example.com/app:latest") end
---
--- Fields (nil when unknown, never an error):
---   name       "github", "gitlab", "travis", or "git" outside CI
---   is_ci      true on a CI service
---   branch     the branch built (for a pull/merge request: its source branch)
---   sha        the full commit id; short_sha its first 8 characters
---   tag        the tag built, on CI services
---   pr         the pull/merge request number, as a string
---
--- Outside CI the git repository of the build context is read directly (HEAD,
--- refs, packed-refs; no git program needed); a folder that is not in a
--- repository gives nils.
local _, internal = ... -- the engine's private functions (see lua/imgbuild/dsl.lua)

local function get(name)
  local v = os.getenv(name)
  if v ~= nil and v ~= "" then return v end
end

local function read(path)
  local f = io.open(path, "r")
  if not f then return nil end
  local text = f:read("a")
  f:close()
  return text
end

local function parent(dir) return dir:match("^(.*)/[^/]*$") end

--- The git folder of the repository holding `dir`: ".git" (a folder, or a
--- file pointing at one, as worktrees and submodules have) in it or above.
local function git_dir(dir)
  while dir and dir ~= "" do
    local dotgit = dir .. "/.git"
    if read(dotgit .. "/HEAD") then return dotgit end
    local pointer = read(dotgit)
    local target = pointer and pointer:match("^gitdir:%s*(.-)%s*$")
    if target then return target:sub(1, 1) == "/" and target or (dir .. "/" .. target) end
    dir = parent(dir)
  end
end

--- The commit a ref names: its loose file, else packed-refs (in the common
--- folder too, for worktrees).
local function resolve_ref(gitdir, ref)
  local common = read(gitdir .. "/commondir")
  local dirs = { gitdir }
  if common then
    common = common:match("^%s*(.-)%s*$")
    dirs[2] = common:sub(1, 1) == "/" and common or (gitdir .. "/" .. common)
  end
  for _, d in ipairs(dirs) do
    local loose = read(d .. "/" .. ref)
    if loose then return loose:match("^(%x+)") end
    for line in (read(d .. "/packed-refs") or ""):gmatch("[^\n]+") do
      local sha, name = line:match("^(%x+) (.+)$")
      if name == ref then return sha end
    end
  end
end

local function from_git(context)
  local gitdir = git_dir(context)
  if not gitdir then return { name = "git", is_ci = false } end
  local head = (read(gitdir .. "/HEAD") or ""):match("^%s*(.-)%s*$")
  local ref = head:match("^ref:%s*(.+)$")
  local sha = ref and resolve_ref(gitdir, ref) or head:match("^(%x+)$")
  return { name = "git", is_ci = false, branch = ref and ref:match("^refs/heads/(.+)$"), sha = sha }
end

local function detect()
  if get("GITHUB_ACTIONS") then
    local ref, kind = get("GITHUB_REF") or "", get("GITHUB_REF_TYPE")
    return {
      name = "github", is_ci = true, sha = get("GITHUB_SHA"),
      branch = get("GITHUB_HEAD_REF") or (kind ~= "tag" and get("GITHUB_REF_NAME") or nil),
      tag = kind == "tag" and get("GITHUB_REF_NAME") or nil,
      pr = ref:match("^refs/pull/(%d+)/"),
    }
  elseif get("GITLAB_CI") then
    -- Current variable names, then the CI_BUILD_* ones of GitLab before 9.0.
    return {
      name = "gitlab", is_ci = true,
      sha = get("CI_COMMIT_SHA") or get("CI_BUILD_REF"),
      branch = get("CI_MERGE_REQUEST_SOURCE_BRANCH_NAME") or get("CI_COMMIT_BRANCH")
        or (not get("CI_COMMIT_TAG") and not get("CI_BUILD_TAG") and (get("CI_COMMIT_REF_NAME") or get("CI_BUILD_REF_NAME")) or nil),
      tag = get("CI_COMMIT_TAG") or get("CI_BUILD_TAG"),
      pr = get("CI_MERGE_REQUEST_IID"),
    }
  elseif get("TRAVIS") then
    local pr = get("TRAVIS_PULL_REQUEST")
    return {
      name = "travis", is_ci = true, sha = get("TRAVIS_COMMIT"),
      branch = get("TRAVIS_PULL_REQUEST_BRANCH") or (not get("TRAVIS_TAG") and get("TRAVIS_BRANCH") or nil),
      tag = get("TRAVIS_TAG"),
      pr = pr ~= "false" and pr or nil,
    }
  end
  return from_git(internal.context_dir)
end

local ci = detect()
ci.short_sha = ci.sha and ci.sha:sub(1, 8) or nil
return ci
