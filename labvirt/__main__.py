from labvirt.cli import main

main()
