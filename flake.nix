{
  description = "agent-guard: a kernel-enforced safety net that stops AI coding agents from destroying or stealing a developer's files";

  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixpkgs-unstable";

  outputs =
    { self, nixpkgs }:
    let
      systems = [
        "aarch64-darwin"
        "x86_64-darwin"
        "x86_64-linux"
        "aarch64-linux"
      ];
      forAllSystems = f: nixpkgs.lib.genAttrs systems (system: f nixpkgs.legacyPackages.${system});
    in
    {
      packages = forAllSystems (pkgs: rec {
        agent-guard = pkgs.callPackage ./nix/package.nix { };
        default = agent-guard;
      });

      # nix-darwin: `imports = [ agent-guard.darwinModules.default ];` then
      # `services.agent-guard.enable = true;` (see nix/darwin-module.nix for the options).
      darwinModules.default =
        { lib, pkgs, ... }:
        {
          imports = [ ./nix/darwin-module.nix ];
          services.agent-guard.package =
            lib.mkDefault
              self.packages.${pkgs.stdenv.hostPlatform.system}.default;
        };
      darwinModules.agent-guard = self.darwinModules.default;
    };
}
