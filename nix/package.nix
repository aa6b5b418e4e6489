# agent-guard built from this workspace with nixpkgs' Rust tooling.
#
# macOS: the daemon links Apple's EndpointSecurity framework and libbsm and calls macOS 13 APIs
# (inverted muting), so it needs an SDK of 13 or later; nixpkgs >= 24.11 provides apple-sdk_14.
# Signing with the ES entitlement happens at install time (nix/darwin-module.nix), not here: the
# store is read-only and the signature must name the installed path's identity.
{
  lib,
  rustPlatform,
  stdenv,
  apple-sdk_14 ? null,
}:

let
  manifest = (builtins.fromTOML (builtins.readFile ../guard/Cargo.toml)).package;
  # Only what the build reads: no target/, no result links, no editor droppings.
  src = lib.cleanSourceWith {
    src = ../.;
    filter =
      path: type:
      let
        base = baseNameOf path;
      in
      !(builtins.elem base [
        "target"
        "result"
        ".git"
      ])
      && lib.cleanSourceFilter path type;
  };
in
rustPlatform.buildRustPackage {
  pname = manifest.name;
  inherit (manifest) version;
  inherit src;

  cargoLock.lockFile = ../Cargo.lock;

  cargoBuildFlags = [
    "-p"
    "agent-guard"
  ];
  # The end-to-end crate drives real processes and, on Linux, seccomp; the sandbox is not the
  # place for that. Unit tests of the library run.
  cargoTestFlags = [
    "-p"
    "agent-guard"
    "--lib"
  ];

  buildInputs = lib.optional (stdenv.hostPlatform.isDarwin && apple-sdk_14 != null) apple-sdk_14;

  meta = {
    description = manifest.description;
    mainProgram = "agent-guard";
    license = with lib.licenses; [
      mit
      asl20
    ];
    platforms = lib.platforms.darwin ++ lib.platforms.linux;
  };
}
