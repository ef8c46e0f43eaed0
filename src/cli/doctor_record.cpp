#include "cli/doctor_record.hpp"

#include <nlohmann/json.hpp>

#include "base/fs.hpp"
#include "oci/digest.hpp"
#include "store/image_records.hpp"

namespace imgbuild::cli {
namespace {

/// What the findings depend on besides the image: the doctor's rules (this
/// imgbuild's version) and its context, hashed.
std::string context_key(const DoctorContext& ctx) {
  nlohmann::json key = {{"imgbuild", IMGBUILD_VERSION}, {"entrypoint_loc", ctx.entrypoint_loc},
                        {"image_loc", ctx.image_loc},   {"ignore", ctx.ignore},
                        {"layer_locs", ctx.layer_locs}, {"base_layers", ctx.base_layers}};
  return sha256_of(key.dump()).str();
}

}  // namespace

std::vector<Finding> examine_kept(const Layout& store, const BuiltImage& built, const std::string& loc,
                                  const std::set<std::string>& ignore) {
  const DoctorContext ctx = doctor_context(built, loc, ignore);
  const std::string key = context_key(ctx);
  const std::filesystem::path kept = image_record_path(store.root(), ImageRecord::Findings, built.manifest.digest);
  try {
    nlohmann::json record = nlohmann::json::parse(read_file(kept));
    if (record.at("context") == key) {
      std::vector<Finding> findings;
      for (const auto& f : record.at("findings"))
        findings.push_back({f.at("error").get<bool>(), f.at("check").get<std::string>(), f.at("loc").get<std::string>(),
                            f.at("message").get<std::string>()});
      return findings;
    }
  } catch (const std::exception&) {
    // none kept, kept for another context, or unreadable: examined again
  }
  std::vector<Finding> findings = examine_image(built.image, *built.tree, ctx);
  nlohmann::json listed = nlohmann::json::array();
  for (const Finding& f : findings)
    listed.push_back({{"error", f.error}, {"check", f.check}, {"loc", f.loc}, {"message", f.message}});
  try {
    std::filesystem::create_directories(kept.parent_path());
    write_record_atomic(kept, nlohmann::json{{"context", key}, {"findings", listed}}.dump());
  } catch (const std::exception&) {
    // only saves the next build work
  }
  return findings;
}

}  // namespace imgbuild::cli
