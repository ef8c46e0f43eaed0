// Tier 2: the `annotations` option of image() and push() sets or drops a
// manifest's (and an index's) annotations, leaving the image config as it is;
// a wrong one fails at the recipe line.
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "oci/image.hpp"
#include "recipe_harness.hpp"
#include "store/layout.hpp"

using namespace imgbuild;
using imgbuild::test::RecipeRun;

TEST_CASE("image() and push() carry their annotations into the graph", "[recipe][annotations]") {
  RecipeRun r;
  Evaluation ev = r.evaluate(
      "local img = scratch:env { A = \"1\" }\n"
      "image(\"a\", img, { annotations = { [\"org.example.team\"] = \"payments\",\n"
      "  [\"org.opencontainers.image.source\"] = \"\" } })\n"
      "image(\"b\", img, { annotations = {} })\n"
      "push(img, { \"localhost:5000/a:1\", \"localhost:5000/a:2\" }, { annotations = { [\"k\"] = \"v\" } })\n"
      "push(img, \"localhost:5000/c\")\n");
  REQUIRE(ev.graph.targets.size() == 2);
  CHECK(ev.graph.targets[0].annotations ==
        std::map<std::string, std::string>{{"org.example.team", "payments"}, {"org.opencontainers.image.source", ""}});
  CHECK(ev.graph.targets[1].annotations.empty());
  REQUIRE(ev.graph.pushes.size() == 3);
  CHECK(ev.graph.pushes[0].annotations == std::map<std::string, std::string>{{"k", "v"}});
  CHECK(ev.graph.pushes[1].annotations == ev.graph.pushes[0].annotations);
  CHECK(ev.graph.pushes[2].annotations.empty());
}

TEST_CASE("wrong annotations are refused at the recipe line", "[recipe][annotations][errors]") {
  RecipeRun r;
  CHECK(r.error_of("image(\"a\", scratch, { annotations = \"k=v\" })\n") ==
        "recipe.lua:1: image: annotations: expected a table of NAME = value, got string");
  CHECK(r.error_of("\nimage(\"a\", scratch, { annotations = { \"v\" } })\n") ==
        "recipe.lua:2: image: annotations: names must be strings, got number");
  CHECK(r.error_of("image(\"a\", scratch, { annotations = { [\"\"] = \"v\" } })\n") ==
        "recipe.lua:1: image: annotations: invalid name '' (annotations need a non-empty name)");
  CHECK(r.error_of("image(\"a\", scratch, { annotations = { k = 1 } })\n") ==
        "recipe.lua:1: image: annotations: value of k is number, not a string");
  CHECK(r.error_of("image(\"a\", scratch, { annotations = { k = true } })\n") ==
        "recipe.lua:1: image: annotations: value of k is boolean, not a string");
  CHECK(r.error_of("image(\"a\", scratch, { annotations = { k = scratch } })\n") ==
        "recipe.lua:1: image: annotations: value of k is image, not a string");
  CHECK(r.error_of("local x = 1\npush(scratch, \"localhost:5000/a\", { annotations = { k = {} } })\n") ==
        "recipe.lua:2: push: annotations: value of k is table, not a string");
  CHECK(r.error_of("push(scratch, \"localhost:5000/a\", { annotations = 7 })\n") ==
        "recipe.lua:1: push: annotations: expected a table of NAME = value, got number");
  CHECK(r.error_of("image(\"a\", scratch, { anotations = {} })\n") ==
        "recipe.lua:1: image: unknown option 'anotations' (did you mean 'annotations'?)");
}

TEST_CASE("annotations set and drop a manifest's, not the config's labels, reproducibly", "[recipe][annotations]") {
  RecipeRun r;
  Evaluation ev = r.evaluate(
      "local img = scratch:label { team = \"core\" }\n"
      "image(\"plain\", img)\n"
      "image(\"annotated\", img, { annotations = { [\"org.example.team\"] = \"payments\",\n"
      "  [\"org.opencontainers.image.created\"] = \"\", team = \"override\" } })\n");
  Layout store(r.cache_dir().parent_path() / "store");
  BuildSettings settings;
  settings.context = r.dir();
  settings.cache_dir = r.cache_dir();
  auto build = [&](const Target& t) {
    Builder builder(ev.graph, store, settings);
    return builder.build(t.node, t.annotations);
  };
  BuiltImage plain = build(ev.graph.targets[0]);
  BuiltImage annotated = build(ev.graph.targets[1]);
  CHECK(plain.image.annotations.count(kCreatedAnnotation) == 1);
  CHECK(annotated.image.annotations ==
        std::map<std::string, std::string>{{"org.example.team", "payments"}, {"team", "override"}});
  auto manifest = nlohmann::json::parse(store.read_document(annotated.manifest));
  CHECK(manifest["annotations"] == nlohmann::json{{"org.example.team", "payments"}, {"team", "override"}});
  // The config is the same document: its labels are the recipe's.
  CHECK(annotated.image.config.labels == std::map<std::string, std::string>{{"team", "core"}});
  CHECK(annotated.image.config_document() == plain.image.config_document());
  CHECK(annotated.manifest.digest != plain.manifest.digest);
  // The same recipe makes the same manifest again.
  CHECK(build(ev.graph.targets[1]).manifest.digest == annotated.manifest.digest);
}

TEST_CASE("an index carries the annotations all its images have alike", "[recipe][annotations]") {
  const std::string base_a = "sha256:" + std::string(64, 'a'), base_b = "sha256:" + std::string(64, 'b');
  // What each platform's image says: the same commit, base name and team;
  // each platform's own base manifest; one image without a version.
  CHECK(index_annotations({{{"org.example.team", "payments"},
                            {kRevisionAnnotation, "abc"},
                            {kBaseNameAnnotation, "docker.io/library/alpine:3"},
                            {kBaseDigestAnnotation, base_a},
                            {kVersionAnnotation, "1.0"}},
                           {{"org.example.team", "payments"},
                            {kRevisionAnnotation, "abc"},
                            {kBaseNameAnnotation, "docker.io/library/alpine:3"},
                            {kBaseDigestAnnotation, base_b}}}) ==
        std::map<std::string, std::string>{{"org.example.team", "payments"},
                                           {kRevisionAnnotation, "abc"},
                                           {kBaseNameAnnotation, "docker.io/library/alpine:3"}});
  CHECK(index_annotations({}).empty());
  RecipeRun r;
  Layout store(r.cache_dir().parent_path() / "store");
  Descriptor m{media_type::kManifest, Digest::parse("sha256:" + std::string(64, 'a')), 1, {}};
  auto index = nlohmann::json::parse(store.read_document(store.put_index({m}, {{"k", "v"}})));
  CHECK(index["annotations"] == nlohmann::json{{"k", "v"}});
  CHECK_FALSE(nlohmann::json::parse(store.read_document(store.put_index({m}))).contains("annotations"));
}
