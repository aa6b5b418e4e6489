# Evaluate nix/darwin-module.nix inside nix-darwin's real module system: nix-darwin's own
# eval-config.nix with its whole module list and nixpkgs' lib, both from ../shared/nix-inputs;
# only `pkgs` is a stand-in (pkgs-stub.nix).
#
#   nix-instantiate --eval --strict --json nix/tests/eval.nix \
#     --argstr buildDir /tmp/x --arg config '{ pkgs, ... }: { services.agent-guard.enable = true; }'
#
# prints what nix/tests/activation.py checks and runs. An option that does not exist, a value of
# the wrong type, or a failing module is an evaluation error, as on a real system.
{
  config,
  buildDir,
  isDarwin ? true,
  module ? ../darwin-module.nix,
  inputs ? ../../../shared/nix-inputs,
}:
let
  lib = import (inputs + "/nixpkgs-lib/lib");
  pkgs = import ./pkgs-stub.nix { inherit lib buildDir isDarwin; };
  system = import (inputs + "/nix-darwin/eval-config.nix") {
    inherit lib;
    specialArgs = { inherit pkgs; };
    modules = [
      module
      {
        system.stateVersion = 6;
        nixpkgs.hostPlatform = if isDarwin then "aarch64-darwin" else "x86_64-linux";
        # A system without nix-darwin's Nix management: its checks need a nix-daemon to ask.
        nix.enable = false;
        # nix-darwin's manual is built from doc/, which the snapshot leaves out.
        documentation.enable = false;
      }
      config
    ];
  };
  c = system.config;
  scripts = c.system.activationScripts;
  plistName = "com.agent-guard.daemon.plist";
in
{
  enabled = c.services.agent-guard.enable;
  failedAssertions = map (a: a.message) (builtins.filter (a: !a.assertion) c.assertions);
  inherit (c) warnings;
  policy = c.system.build.agentGuardPolicy.text or null;
  daemonPlist =
    if c.environment.launchDaemons ? ${plistName} then c.environment.launchDaemons.${plistName}.text else null;
  systemPackages = map (p: p.outPath or (toString p)) c.environment.systemPackages;
  fragments = {
    checks = scripts.checks.text;
    extraActivation = scripts.extraActivation.text;
    launchd = scripts.launchd.text;
    postActivation = scripts.postActivation.text;
  };
  # The whole activation script nix-darwin renders (for its order and syntax).
  script = scripts.script.text;
  # Stand-in derivations the fragments read from: built by the harness before it runs them.
  builds = [
    {
      out = c.system.build.launchd.outPath;
      inherit (c.system.build.launchd) script;
    }
  ];
}
