// imgbuild convert [DOCKERFILE | DIR] [-f FILE] [--context DIR]: prints the
// recipe equivalent to a Dockerfile (convert/recipe_writer.hpp). As with
// `docker build -f FILE DIR`, the Dockerfile and the build context may be
// named apart; by default the context is the Dockerfile's folder.
#include <filesystem>
#include <iostream>

#include "base/fs.hpp"
#include "cli/commands.hpp"
#include "cli/options.hpp"
#include "cli/report.hpp"
#include "convert/recipe_writer.hpp"

namespace imgbuild::cli {
namespace {

namespace fs = std::filesystem;

const Syntax kConvertSyntax = {{Opt::File, Opt::Context}, Operands::NotDash};

}  // namespace

int cmd_convert(const std::vector<std::string>& args) {
  Options options;
  std::vector<std::string> operands = parse_options(args, kConvertSyntax, options);
  if (operands.size() > 1)
    throw UsageError("convert takes one Dockerfile or folder, got " + std::to_string(operands.size()));
  fs::path dockerfile = options.file.value_or("Dockerfile");
  std::optional<fs::path> context = options.context;
  if (!operands.empty()) {
    fs::path given = operands[0];
    if (fs::is_directory(given)) {
      if (!options.file) dockerfile = given / "Dockerfile";
      if (!context) context = given;
    } else if (options.file) {
      throw UsageError("convert: with -f, the operand is the build context folder, and " + given.string() +
                       " is not one");
    } else {
      dockerfile = given;
    }
  }
  if (!context) context = dockerfile.parent_path().empty() ? fs::path(".") : dockerfile.parent_path();
  convert::ConvertOptions convert;
  convert.name = dockerfile.string();
  convert.context = *context;
  fs::path folder = fs::weakly_canonical(fs::absolute(*context));
  if (folder.filename().empty()) folder = folder.parent_path();
  convert.target = convert::target_name(folder.filename().string());
  if (!fs::exists(dockerfile))
    throw std::runtime_error("convert: no Dockerfile at " + dockerfile.string() +
                             " (name a Dockerfile, its folder, or -f FILE)");
  std::cout << convert::dockerfile_to_recipe(read_file(dockerfile), convert);
  return 0;
}

}  // namespace imgbuild::cli
