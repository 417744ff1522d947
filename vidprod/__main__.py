from vidprod.cli import main

raise SystemExit(main())
