// Package service is the device agent as a program: what turns package
// agent's state machine into the pibake-updater service and its commands.
// It owns
//
//   - the wiring (wire.go): updater.yaml and the running device (its
//     slots, bootsel, boot chain, health checks, keys) made into one
//     agent.Agent;
//   - the service loop (serve.go): settle the boot, then poll the channel,
//     reload the configuration when the override changes, and feed
//     systemd's watchdog only while the loop makes progress (watchdog.go),
//     holding the first check back until the clock is set (clock.go);
//   - the one-off commands: install from a URL, bundle file or folder
//     (install.go), check, mark-good, first-boot provisioning
//     (provision.go), and status (status.go), which reads only: it mounts
//     nothing and writes nothing (bootstate.go).
//
// cmd/pibake-updater parses the command line and calls in here. Nothing in
// this package is builder code; its depcheck test keeps it so.
package service
