-- examples/ci-push/recipe.lua: the seed CI scripts as one recipe. They built
-- on every commit, tagged the image registry/app:<branch>_<sha>, and pushed
-- it, with latest, only from the main branch. The same recipe runs on GitHub
-- Actions, GitLab CI, Travis and a laptop: `ci` says where it is.
--   imgbuild recipe.lua --set registry=registry.example.com/team
--   imgbuild recipe.lua --set main_branch=master      (an older repository)
local service = require "imgbuild.service"

local registry = param("registry", "localhost:5000/team")
local main_branch = param("main_branch", "main")

-- A scratch image with certificates, a non-root user and labels naming the
-- commit (see imgbuild-stdlib(7)).
local app = service.image { name = "ci-push", port = 8080 }
image("ci-push", app)

-- branch_sha, with what a tag cannot hold ("feature/login") replaced.
local tag = (ci.branch or "detached"):gsub("[^%w_.-]", "-") .. "_" .. (ci.short_sha or "unknown")

-- Pull requests never push, even from a branch named main (a fork's).
if ci.branch == main_branch and not ci.pr then
  push(app, registry .. "/ci-push:" .. tag)
  push(app, registry .. "/ci-push:latest")
else
  print("ci-push: " .. tag .. " is not pushed: only " .. main_branch .. " pushes"
    .. (ci.pr and (" (pull request " .. ci.pr .. ")") or ""))
end
