# Boots the guest kit's riscv64 guest on the emulator with commands piped to its console
# (tests/boot_riscv64/boot.sh); skipped (77) when the guest kit is not built.
foreach(harts 1 4)
  add_test(NAME boot_riscv64.harts${harts}
           COMMAND sh ${CMAKE_SOURCE_DIR}/tests/boot_riscv64/boot.sh $<TARGET_FILE:doppel>
                   ${CMAKE_SOURCE_DIR} ${harts})
  set_tests_properties(boot_riscv64.harts${harts} PROPERTIES
                       SKIP_RETURN_CODE 77 TIMEOUT 700 LABELS "guest;boot")
endforeach()

# The console on a terminal: typed input, Ctrl-A x (exit 5), the terminal restored.
add_test(NAME boot_riscv64.terminal
         COMMAND python3 ${CMAKE_SOURCE_DIR}/tests/boot_riscv64/terminal.py $<TARGET_FILE:doppel>
                 ${CMAKE_SOURCE_DIR})
set_tests_properties(boot_riscv64.terminal PROPERTIES
                     SKIP_RETURN_CODE 77 TIMEOUT 400 LABELS "guest;boot")

# Boot anything (issue 13): a bare-metal ELF / raw binary with --firmware none and behind
# OpenSBI fw_jump; Debian's U-Boot to its prompt; --boot disk through U-Boot to Linux.
# api_disk: the same disk boot built through the API (boot_from "disk").
add_test(NAME boot_riscv64.baremetal
         COMMAND bash ${CMAKE_SOURCE_DIR}/tests/boot_riscv64/baremetal.sh $<TARGET_FILE:doppel>
                 ${CMAKE_SOURCE_DIR} ${CMAKE_BINARY_DIR}/boot-baremetal-work)
set_tests_properties(boot_riscv64.baremetal PROPERTIES
                     SKIP_RETURN_CODE 77 TIMEOUT 300 LABELS "guest;boot")
foreach(t uboot disk api_disk)
  add_test(NAME boot_riscv64.${t} COMMAND bash ${CMAKE_SOURCE_DIR}/tests/boot_riscv64/${t}.sh)
  set_tests_properties(boot_riscv64.${t} PROPERTIES
                       ENVIRONMENT "DOPPEL=$<TARGET_FILE:doppel>"
                       SKIP_RETURN_CODE 77 TIMEOUT 600 LABELS "guest;boot")
endforeach()
