# The stand-in for nixpkgs' `pkgs` (the one part of the evaluation that is not the real thing):
# what nix-darwin's modules and nix/darwin-module.nix take from it, without building anything.
#
# - writeText/writeScript write the file for real (builtins.toFile), so the rendered activation
#   script names files that exist;
# - runCommand returns its script and an output under `buildDir`; nix/tests/activation.py runs
#   the script there (only nix-darwin's launchd directory needs it);
# - `agentGuardAt version` is a package whose bin/agent-guard the harness writes under
#   `buildDir`; `jq` is the harness's jq;
# - formats.json is nixpkgs' own definition (pkgs/pkgs-lib/formats.nix), its `generate` without
#   the jq pretty-printing;
# - the other packages are only named by nix-darwin's other activation fragments, never run.
{
  lib,
  buildDir,
  isDarwin ? true,
}:
let
  stub =
    name: extra:
    {
      type = "derivation";
      inherit name;
      outPath = "${buildDir}/${name}";
      meta.mainProgram = name;
    }
    // extra;
  writeText =
    name: text:
    stub name {
      outPath = builtins.toFile name text;
      inherit text;
    };
  agentGuardAt =
    version:
    stub "agent-guard-${version}" {
      pname = "agent-guard";
      inherit version;
      meta.mainProgram = "agent-guard";
    };
  hostPlatform = lib.systems.elaborate (if isDarwin then "aarch64-darwin" else "x86_64-linux");
in
{
  inherit writeText agentGuardAt;
  writeScript = writeText;
  # The output path depends on the script, as a store path on its inputs.
  runCommand =
    name: _env: script:
    stub name {
      outPath = "${buildDir}/${builtins.substring 0 12 (builtins.hashString "sha256" script)}-${name}";
      inherit script;
    };
  # nix/package.nix is agent-guard; nix-darwin's own tools are names it puts in systemPackages.
  callPackage =
    fn: _args:
    if builtins.isPath fn && baseNameOf fn == "package.nix" then
      agentGuardAt "0.1.0"
    else
      stub "nix-darwin-tools" {
        darwin-option = stub "darwin-option" { };
        darwin-rebuild = stub "darwin-rebuild" { };
        darwin-version = stub "darwin-version" { };
      };
  buildEnv = args: stub args.name { };
  stdenv = {
    shell = "/bin/bash";
    inherit hostPlatform;
  };
  stdenvNoCC = {
    shell = "/bin/bash";
    inherit hostPlatform;
  };

  formats.json =
    { }:
    {
      type =
        let
          valueType =
            with lib.types;
            nullOr (oneOf [
              bool
              int
              float
              str
              path
              (attrsOf valueType)
              (listOf valueType)
            ])
            // {
              description = "JSON value";
            };
        in
        valueType;
      generate = name: value: writeText name (builtins.toJSON value);
    };

  jq = stub "jq" { };
  coreutils = stub "coreutils" { };
  gnugrep = stub "gnugrep" { };
  gnused = stub "gnused" { };
  openssh = stub "openssh" { };
  rsync = stub "rsync" { };
  bashInteractive = stub "bashInteractive" { };
  texinfoInteractive = stub "texinfoInteractive" { };
  nix-zsh-completions = stub "nix-zsh-completions" { };
  zsh = stub "zsh" { };
}
