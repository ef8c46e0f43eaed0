// imgbuild push NAME REF...: a stored image, as stored, to one or more tags
// (each blob sent once per registry), with its SBOM and signature attached.
#include "cli/attachments.hpp"
#include "cli/commands.hpp"
#include "cli/local_store.hpp"
#include "cli/options.hpp"
#include "cli/progress.hpp"
#include "cli/registry_access.hpp"
#include "cli/report.hpp"
#include "registry/transfer.hpp"

namespace imgbuild::cli {
namespace {

const Syntax kPushSyntax = {OptionSet{Opt::SignKey} | kRegistryOptions, Operands::NotDash};

}  // namespace

int cmd_push(const std::vector<std::string>& args) {
  Options options;
  std::vector<std::string> operands = parse_options(args, kPushSyntax, options);
  if (operands.size() < 2)
    throw UsageError("push takes a stored image and one or more references: imgbuild push NAME REF...");
  std::vector<Reference> dests;
  for (auto it = operands.begin() + 1; it != operands.end(); ++it) {
    try {
      dests.push_back(Reference::parse(*it));
    } catch (const ReferenceError& e) {
      throw UsageError(e.what());
    }
    if (dests.back().digest) throw UsageError("push: '" + *it + "' names a digest; push to a tag");
  }
  std::optional<EcKey> key = signing_key(options);
  Layout store = open_store();
  auto manifest = find_stored(store, operands[0]);
  if (!manifest) throw std::runtime_error("no image named '" + operands[0] + "' in the store (see imgbuild images)");
  RegistryAccess registry(options);
  // A pulled base is stored without the layers no build needed yet; they come
  // from the registry it was pulled from (its stored name). An index is one a
  // build made for several platforms: every blob of it is in the store.
  if (!manifest->media_type.is_index()) {
    std::vector<LayerBlob> missing = layers_missing(store, *manifest);
    if (!missing.empty() && manifest->platform)
      fetch_layers(registry.client(), store, Reference::parse(operands[0]), missing);
  }
  DocumentsAhead ahead(store, *manifest, dests.front().str());
  PushResult result = push_tags(registry.client(), store, *manifest, dests);
  print_push(result);
  attach_pushed(registry.client(), store, *manifest, result.pushed(), key ? &*key : nullptr, &ahead);
  std::string failed = result.failures();
  if (failed.empty()) return 0;
  // One tag fails as a build's push() of it does, with the registry's words.
  if (dests.size() == 1) throw std::runtime_error(result.tags.front().error);
  throw std::runtime_error("push: " + std::to_string(result.tags.size() - result.manifests) + " of " +
                           std::to_string(result.tags.size()) + " tags failed:\n" + failed);
}

}  // namespace imgbuild::cli
