#!/usr/bin/env bash
# Tier 3: examples/ci-push, the CI flow as a recipe, run as GitHub Actions,
# GitLab CI (current and pre-9.0 variable names) and Travis would run it, and
# outside CI in a real git repository. Each run pushes to its own repository
# of a local registry; the registry's tag list is the verdict: exactly
# <branch>_<short sha> and latest from the main branch, nothing from feature
# branches, pull requests or tags.
#
#   tests/e2e/ci_flow.sh IMGBUILD REPO_ROOT
set -uo pipefail
source "$(dirname "$0")/lib.sh"
e2e_workspace "$@"
EXAMPLE="$ROOT/examples/ci-push"
share_go_cache

SHA=0a1b2c3d4e5f60718293a4b5c6d7e8f901234567
SHORT=${SHA:0:8}
# Every variable the ci module reads, unset, so the machine running this suite
# (itself perhaps a CI job) cannot leak into a scenario.
CLEAN=(env -u GITHUB_ACTIONS -u GITHUB_REF -u GITHUB_REF_TYPE -u GITHUB_REF_NAME -u GITHUB_HEAD_REF -u GITHUB_SHA
  -u GITHUB_SERVER_URL -u GITHUB_REPOSITORY -u GITLAB_CI -u CI_COMMIT_SHA -u CI_COMMIT_BRANCH -u CI_COMMIT_REF_NAME
  -u CI_COMMIT_TAG -u CI_MERGE_REQUEST_SOURCE_BRANCH_NAME -u CI_MERGE_REQUEST_IID -u CI_PROJECT_URL -u CI_BUILD_REF
  -u CI_BUILD_REF_NAME -u CI_BUILD_TAG -u TRAVIS -u TRAVIS_BRANCH -u TRAVIS_COMMIT -u TRAVIS_TAG -u TRAVIS_PULL_REQUEST
  -u TRAVIS_PULL_REQUEST_BRANCH -u TRAVIS_REPO_SLUG)

# run_ci NAME [VAR=VALUE...] [-- IMGBUILD ARGS...]: builds the example with the
# scenario's variables, pushing to $REG/NAME.
run_ci() {
  local name=$1 vars=() args=()
  shift
  while [[ $# -gt 0 && $1 != -- ]]; do vars+=("$1"); shift; done
  [[ ${1:-} == -- ]] && shift
  args=("$@")
  check_cmd "${CLEAN[@]}" "${vars[@]}" "$IMGBUILD" "$RECIPE" --set "registry=$REG/$name" "${args[@]}"
}

# tags NAME: the registry's tags of NAME/ci-push, sorted, space-separated;
# "none" when the repository does not exist. The referrers index each pushed
# image gets (sha256-<hex>, its SBOM: docs/signing.md) is no tag of the pipeline's.
tags() {
  local body
  body=$(curl -s "http://$REG/v2/$1/ci-push/tags/list")
  if jq -e '.errors[0].code == "NAME_UNKNOWN"' >/dev/null 2>&1 <<<"$body"; then echo none; return; fi
  jq -r '[.tags[] | select(test("^sha256-[0-9a-f]{64}$") | not)] | sort | join(" ")' <<<"$body"
}

# pushed NAME EXPECTED: the tags of NAME are exactly EXPECTED.
pushed() {
  local got
  got=$(tags "$1")
  if [[ $got == "$2" ]]; then pass "$1: tags are: $2"; else fail "$1: tags are: $2 (got: $got)"; fi
}

# not_pushed NAME: the registry never heard of NAME, and the build said why.
not_pushed() {
  pushed "$1" none
  check "$1: the build said it does not push" grep -q "^ci-push: .* is not pushed: only .* pushes" "$work/last.err"
}

step "a registry"
here "registry" registry_start open
REG=$REGISTRY_open
RECIPE="$EXAMPLE/recipe.lua"

step "GitHub Actions"
run_ci github-main GITHUB_ACTIONS=true GITHUB_REF=refs/heads/main GITHUB_REF_NAME=main GITHUB_REF_TYPE=branch \
  GITHUB_SHA=$SHA GITHUB_SERVER_URL=https://github.com GITHUB_REPOSITORY=team/ci-push -- -o "oci:$work/oci"
pushed github-main "latest main_$SHORT"
digest=$(jq -r '.manifests[0].digest' "$work/oci/index.json")
check "both tags name the image built" sh -c "grep -qx 'pushed $REG/github-main/ci-push:main_$SHORT@$digest' '$work/last.out' &&
  grep -qx 'pushed $REG/github-main/ci-push:latest@$digest' '$work/last.out'"
check "the doctor found nothing to say" sh -c "! grep -q warning '$work/last.err'"
check "oci_validate.py and check_promises.py say OK" valid_image "$work/oci"
skopeo inspect --tls-verify=false --config "docker://$REG/github-main/ci-push:latest" >"$work/config.json" 2>&1
check "the pushed image's labels come from ci" jq -e --arg sha "$SHA" '.config.Labels == {
  "org.opencontainers.image.revision": $sha, "org.opencontainers.image.source": "https://github.com/team/ci-push",
  "org.opencontainers.image.title": "ci-push" }' "$work/config.json"
check "a non-root user and the service's entrypoint" \
  jq -e '.config.User == "65534" and .config.Entrypoint == ["/usr/local/bin/ci-push"]' "$work/config.json"
run_ci github-feature GITHUB_ACTIONS=true GITHUB_REF=refs/heads/feature/login GITHUB_REF_NAME=feature/login \
  GITHUB_REF_TYPE=branch GITHUB_SHA=$SHA
not_pushed github-feature
check "the tag it would have had is tag-safe" grep -q "^ci-push: feature-login_$SHORT is not pushed" "$work/last.err"
run_ci github-pr GITHUB_ACTIONS=true GITHUB_REF=refs/pull/42/merge GITHUB_REF_NAME=42/merge GITHUB_REF_TYPE=branch \
  GITHUB_HEAD_REF=main GITHUB_SHA=$SHA
not_pushed github-pr
check "a pull request from a branch named main (a fork's) is a pull request" \
  grep -q "is not pushed: only main pushes (pull request 42)" "$work/last.err"
run_ci github-tag GITHUB_ACTIONS=true GITHUB_REF=refs/tags/v1.0.0 GITHUB_REF_NAME=v1.0.0 GITHUB_REF_TYPE=tag GITHUB_SHA=$SHA
not_pushed github-tag

step "GitLab CI"
run_ci gitlab-main GITLAB_CI=true CI_COMMIT_SHA=$SHA CI_COMMIT_REF_NAME=main CI_COMMIT_BRANCH=main
pushed gitlab-main "latest main_$SHORT"
run_ci gitlab-feature GITLAB_CI=true CI_COMMIT_SHA=$SHA CI_COMMIT_REF_NAME=feature CI_COMMIT_BRANCH=feature
not_pushed gitlab-feature
run_ci gitlab-mr GITLAB_CI=true CI_COMMIT_SHA=$SHA CI_COMMIT_REF_NAME=main CI_MERGE_REQUEST_IID=7 \
  CI_MERGE_REQUEST_SOURCE_BRANCH_NAME=main
not_pushed gitlab-mr

step "GitLab CI before 9.0 (CI_BUILD_* names), on master"
run_ci gitlab-old-master GITLAB_CI=true CI_BUILD_REF=$SHA CI_BUILD_REF_NAME=master -- --set main_branch=master
pushed gitlab-old-master "latest master_$SHORT"
run_ci gitlab-old-feature GITLAB_CI=true CI_BUILD_REF=$SHA CI_BUILD_REF_NAME=feature -- --set main_branch=master
not_pushed gitlab-old-feature
run_ci gitlab-old-tag GITLAB_CI=true CI_BUILD_REF=$SHA CI_BUILD_REF_NAME=v0.9 CI_BUILD_TAG=v0.9 -- --set main_branch=master
not_pushed gitlab-old-tag

step "Travis, on master"
run_ci travis-master TRAVIS=true TRAVIS_BRANCH=master TRAVIS_COMMIT=$SHA TRAVIS_PULL_REQUEST=false \
  TRAVIS_PULL_REQUEST_BRANCH= TRAVIS_TAG= -- --set main_branch=master
pushed travis-master "latest master_$SHORT"
# TRAVIS_BRANCH is the pull request's target: master, though the branch built is not.
run_ci travis-pr TRAVIS=true TRAVIS_BRANCH=master TRAVIS_COMMIT=$SHA TRAVIS_PULL_REQUEST=12 \
  TRAVIS_PULL_REQUEST_BRANCH=feature TRAVIS_TAG= -- --set main_branch=master
not_pushed travis-pr
run_ci travis-feature TRAVIS=true TRAVIS_BRANCH=feature TRAVIS_COMMIT=$SHA TRAVIS_PULL_REQUEST=false \
  TRAVIS_PULL_REQUEST_BRANCH= TRAVIS_TAG= -- --set main_branch=master
not_pushed travis-feature

step "--no-push on main pushes nothing"
run_ci github-dry GITHUB_ACTIONS=true GITHUB_REF_NAME=main GITHUB_SHA=$SHA -- --no-push
pushed github-dry none
check "it says what it would push" grep -q "^would push $REG/github-dry/ci-push:main_$SHORT@sha256:" "$work/last.out"

step "outside CI: a real git repository, read without git"
REPO="$work/repo"
cp -r "$EXAMPLE" "$REPO"
here "git init and commit on main" sh -c "cd '$REPO' && git init -q -b main && git add . &&
  git -c user.name=t -c user.email=t@example.com commit -qm 'first'"
git_sha=$(git -C "$REPO" rev-parse HEAD)
RECIPE="$REPO/recipe.lua"
run_ci git-main
pushed git-main "latest main_${git_sha:0:8}"
skopeo inspect --tls-verify=false --config "docker://$REG/git-main/ci-push:latest" >"$work/config.json" 2>&1
check "the revision label is the checkout's commit" \
  jq -e --arg sha "$git_sha" '.config.Labels["org.opencontainers.image.revision"] == $sha' "$work/config.json"
here "a feature branch with a commit, refs packed" sh -c "cd '$REPO' && git checkout -q -b feature/x &&
  echo '// change' >> main.go && git -c user.name=t -c user.email=t@example.com commit -qam 'change' && git pack-refs --all"
run_ci git-feature
not_pushed git-feature
check "the tag it would have had names the branch and its commit" \
  grep -q "^ci-push: feature-x_$(git -C "$REPO" rev-parse HEAD | cut -c1-8) is not pushed" "$work/last.err"
here "back on main, its ref now only in packed-refs" git -C "$REPO" checkout -q main
run_ci git-main-packed
pushed git-main-packed "latest main_${git_sha:0:8}"
rm -rf "$REPO/.git"
run_ci git-none
not_pushed git-none
check "a folder that is no repository: no branch, no commit, no error" \
  grep -q "^ci-push: detached_unknown is not pushed" "$work/last.err"

finish
