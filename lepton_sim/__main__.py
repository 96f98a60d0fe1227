from lepton_sim.cli import main

raise SystemExit(main())
