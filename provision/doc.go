// Package provision reads a device's first-boot settings from the boot
// partition (bootsel) and applies them once, into /etc and /data of the
// running system, never into the image.
//
// Two inputs are understood, both mapped onto one [Spec]:
//
//   - pibake's own file, pibake-provision.yaml ([Parse]): hostname, Wi-Fi,
//     SSH keys and a password hash for users the image has, sshd's
//     password login, time zone, files under /data and the update agent's
//     channel override. It is strict: an unknown field, a wrong type or a
//     malformed entry is an error naming the line and the field.
//   - the subset of cloud-init NoCloud files (user-data, network-config,
//     meta-data) that Raspberry Pi Imager writes with its OS customisation
//     ([ParseCloudInit]). pibake never runs cloud-init: what it cannot
//     apply (runcmd, packages, write_files, rpi:, keyboard, …) is listed in
//     Spec.NotApplied and logged; the rest applies (docs/provisioning.md
//     has the rule).
//
// [Apply] validates everything against the target root first, stages every
// file next to its destination, then renames them into place; a failure
// before the last rename restores what was there. [Wipe] overwrites a
// file's bytes in place before unlinking it, so the secrets it held do not
// stay in the FAT's free clusters. [Run] is the first-boot sequence the
// device agent's "provision" command runs.
//
// Limits: no new users (the root filesystem is read-only: /home is in the
// image), no commands of any kind, no static IP addresses (the image's
// systemd-networkd does DHCP on every link), Wi-Fi as WPA-PSK or open
// (WPA3-only SAE networks need a passphrase wpa_supplicant keeps, which
// pibake never stores).
package provision
