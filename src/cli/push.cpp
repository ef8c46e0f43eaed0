// imgbuild push NAME REF: a stored image, as stored, to a registry.
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
  if (operands.size() != 2) throw UsageError("push takes a stored image and a reference: imgbuild push NAME REF");
  Reference dest;
  try {
    dest = Reference::parse(operands[1]);
  } catch (const ReferenceError& e) {
    throw UsageError(e.what());
  }
  if (dest.digest) throw UsageError("push: '" + operands[1] + "' names a digest; push to a tag");
  std::optional<EcKey> key = signing_key(options);
  Layout store = open_store();
  auto manifest = find_stored(store, operands[0]);
  if (!manifest) throw std::runtime_error("no image named '" + operands[0] + "' in the store (see imgbuild images)");
  RegistryAccess registry(options);
  // A pulled base is stored without the layers no build needed yet; they come
  // from the registry it was pulled from (its stored name).
  StoredImage stored = load_stored(store, *manifest);
  Image image = image_from_documents(stored.manifest_json, stored.config_json);
  std::vector<LayerBlob> missing;
  for (auto& layer : image.layers)
    if (!store.verify_blob(layer.digest, layer.size)) missing.push_back(layer);
  if (!missing.empty() && manifest->platform)
    fetch_layers(registry.client(), store, Reference::parse(operands[0]), missing);
  print_push(dest.str(), push_image(registry.client(), store, *manifest, dest));
  attach_pushed(registry.client(), store, *manifest, dest, key ? &*key : nullptr);
  return 0;
}

}  // namespace imgbuild::cli
