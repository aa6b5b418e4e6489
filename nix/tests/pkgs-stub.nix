# Stand-ins for the two nixpkgs functions the module calls. `text` is kept on the result so the
# harness can read what the module rendered.
{
  writeText = name: text: {
    type = "derivation";
    inherit name text;
    outPath = "/nix/store/00000000000000000000000000000000-${name}";
  };
  callPackage = _fn: _args: {
    type = "derivation";
    name = "agent-guard-0.1.0";
    version = "0.1.0";
    outPath = "/nix/store/11111111111111111111111111111111-agent-guard-0.1.0";
  };
}
