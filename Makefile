# Chukan. The two commands a fresh machine needs:
#   make run    install what is missing, build (release), make dev certificates, serve the demo
#   make test   install what is missing, check generated code, run every test
SHELL := /bin/bash
export PATH := $(PATH):/opt/swift/usr/bin

SWIFT ?= swift
RELEASE := .build/release

.PHONY: run test build release bootstrap protos protos-check test-leaks test-asan test-tsan bench clean

bootstrap:
	@scripts/bootstrap.sh

build: bootstrap
	$(SWIFT) build

release: bootstrap
	$(SWIFT) build -c release

demo/certs/ca.crt:
	@mkdir -p demo
	$(RELEASE)/chukanctl certs init demo/certs --client admin --client gateway --client asahikawa-admin \
	  --client resident-system --client code-manager --client addressee-system --client number-system \
	  --client approver --client auditor --client terminal-1

# The demo tenant: Asahikawa (012041), 100,000 synthetic residents, made on first run;
# later runs recover it from its snapshot and log.
demo/.data-ready:
	@mkdir -p demo
	rm -rf demo/data/012041
	$(RELEASE)/chukanctl tenant add --data demo/data --keys demo/keys --tenant 012041
	$(RELEASE)/chukanctl data generate --count 100000 --seed 1 --out demo/residents.bin
	$(RELEASE)/chukanctl data import --data demo/data --keys demo/keys --tenant 012041 demo/residents.bin
	$(RELEASE)/chukanctl snapshot create --data demo/data --keys demo/keys --tenant 012041
	touch $@

# A demo staff member (a clerk) to sign in on terminal-1; the password is the demo's own
# and must be changed at the first sign-in.
demo/.staff-ready: demo/.data-ready
	printf 'demo-clerk-password\n' | $(RELEASE)/chukanctl staff add --offline --data demo/data --keys demo/keys --tenant 012041 clerk01 --roles clerk
	touch $@

# 提供 needs the national network's key: the demo signs its own permits with a development
# one, and plays an inquirer with a development X25519 key.
demo/provision/network.pub:
	$(RELEASE)/chukanctl dev network-key --out demo/provision
	$(RELEASE)/chukanctl dev inquirer-key --out demo/provision

run: release demo/certs/ca.crt demo/.data-ready demo/.staff-ready demo/provision/network.pub
	@echo
	@echo "Chukan demo: mutual TLS on 127.0.0.1:7443, health-only on :7444, metrics on http://127.0.0.1:9464/metrics"
	@echo "Call it from another terminal:"
	@echo "  $(RELEASE)/chukanctl call health"
	@echo "  $(RELEASE)/chukanctl call echo 'こんにちは'"
	@echo "  $(RELEASE)/chukanctl call health --tenant 012041"
	@echo "  $(RELEASE)/chukanctl call tenants"
	@echo "  $(RELEASE)/chukanctl snapshot create --online"
	@echo "As the tenant's systems (demo/certs/<name>.crt; roles in config/demo-policy.yaml):"
	@echo "  $(RELEASE)/chukanctl call lookup --cert demo/certs/addressee-system.crt --key demo/certs/addressee-system.key A000000001"
	@echo "  $(RELEASE)/chukanctl call household --cert demo/certs/addressee-system.crt --key demo/certs/addressee-system.key H000000001"
	@echo "  $(RELEASE)/chukanctl call acquire-code --cert demo/certs/code-manager.crt --key demo/certs/code-manager.key T000000001"
	@echo "  echo 123456789018 | $(RELEASE)/chukanctl call lookup --by kojin --cert demo/certs/addressee-system.crt --key demo/certs/addressee-system.key -   # refused: clerk (a 個人番号 from stdin, not argv)"
	@echo "A clerk signs in on terminal-1 (initial password demo-clerk-password; after the first run, the one you set,"
	@echo "or reset it: $(RELEASE)/chukanctl staff reset-password clerk01 --cert demo/certs/asahikawa-admin.crt --key demo/certs/asahikawa-admin.key), changes it, and asks:"
	@echo "  T1='--cert demo/certs/terminal-1.crt --key demo/certs/terminal-1.key'"
	@echo "  export CHUKAN_TOKEN=\$$(printf 'demo-clerk-password\\n' | $(RELEASE)/chukanctl call login \$$T1 clerk01)   # the token from the environment, out of ps"
	@echo "  printf 'demo-clerk-password\\nmy-own-password-1\\n' | $(RELEASE)/chukanctl call change-password \$$T1"
	@echo "  $(RELEASE)/chukanctl call lookup \$$T1 A000000001"
	@echo "  $(RELEASE)/chukanctl call search \$$T1 --kana '<kana from the answer>' --birth YYYY-MM-DD"
	@echo "提供 as the national network's gateway, for 厚生労働大臣 (MHLW0001) under 項 1 (config/permission-list.yaml):"
	@echo "  CM='--cert demo/certs/code-manager.crt --key demo/certs/code-manager.key'; GW='--cert demo/certs/gateway.crt --key demo/certs/gateway.key'"
	@echo "  FUGO=\$$($(RELEASE)/chukanctl call acquire-code \$$CM T000000001)"
	@echo "  $(RELEASE)/chukanctl dev permit --inquirer MHLW0001 --row 1 --fugo \$$FUGO --group name-and-birth --out demo/provision/permit.bin"
	@echo "  $(RELEASE)/chukanctl call provide \$$GW --inquirer MHLW0001 --row 1 --fugo \$$FUGO --group name-and-birth --permit demo/provision/permit.bin --inquirer-key demo/provision/inquirer.pub --out demo/provision/answer.bin"
	@echo "  $(RELEASE)/chukanctl dev open-answer --key demo/provision/inquirer.key demo/provision/answer.bin"
	@echo "  T000001000 carries a handling restriction: its answer is held (FAILED_PRECONDITION with a pending id) for an approver:"
	@echo "  FUGO2=\$$($(RELEASE)/chukanctl call acquire-code \$$CM T000001000)"
	@echo "  $(RELEASE)/chukanctl dev permit --inquirer LG012041 --row 48 --fugo \$$FUGO2 --group household --out demo/provision/permit2.bin"
	@echo "  $(RELEASE)/chukanctl call provide \$$GW --inquirer LG012041 --row 48 --fugo \$$FUGO2 --group household --permit demo/provision/permit2.bin --inquirer-key demo/provision/inquirer.pub"
	@echo "  $(RELEASE)/chukanctl call held list --cert demo/certs/approver.crt --key demo/certs/approver.key"
	@echo "  $(RELEASE)/chukanctl call held review --cert demo/certs/approver.crt --key demo/certs/approver.key <pending id>"
	@echo "  $(RELEASE)/chukanctl call held release --cert demo/certs/approver.crt --key demo/certs/approver.key --reviewed <would_send_sha256> <pending id>"
	@echo "  $(RELEASE)/chukanctl call held fetch \$$GW --out demo/provision/answer.bin <pending id>"
	@echo "  $(RELEASE)/chukanctl disclose --cert demo/certs/auditor.crt --key demo/certs/auditor.key --by integrated T000000001"
	@echo "Then the audit trail (read-only, while the server runs):"
	@echo "  $(RELEASE)/chukanctl audit verify --tenant 012041"
	@echo "  $(RELEASE)/chukanctl audit query --tenant 012041 --operation Lookup"
	@echo "Stop with Ctrl-C (drains calls in flight)."
	@echo
	exec $(RELEASE)/chukan serve --config config/demo.yaml

test: bootstrap protos-check
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build 2>&1 | tee .build/test.log; exit $${PIPESTATUS[0]}

protos:
	scripts/generate-protos.sh

protos-check:
	scripts/generate-protos.sh --check

# The whole suite under LeakSanitizer (an AddressSanitizer build in .build-asan).
test-leaks: bootstrap
	scripts/test-leaks.sh

# AddressSanitizer (with LeakSanitizer): the same run as test-leaks.
test-asan: test-leaks

# ThreadSanitizer over the whole suite (.build-tsan); not part of CI.
test-tsan: bootstrap
	scripts/test-tsan.sh

# Echo over TLS beside containerd's Go ttrpc server, and the register beside Redis
# (Benchmarks/README.md).
bench: bootstrap
	Benchmarks/run-echo.sh
	Benchmarks/run-register.sh

clean:
	rm -rf .build .build-asan .build-tsan .build-fuzz demo
