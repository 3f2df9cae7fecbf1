//! Which branch delivers to a point.

use crate::Branch;

const EARTH_RADIUS_KM: f64 = 6371.0088;

/// Great-circle distance in kilometres (haversine).
pub fn haversine_km(a: (f64, f64), b: (f64, f64)) -> f64 {
    let (lat1, lon1) = (a.0.to_radians(), a.1.to_radians());
    let (lat2, lon2) = (b.0.to_radians(), b.1.to_radians());
    let dlat = lat2 - lat1;
    let dlon = lon2 - lon1;
    let h = (dlat / 2.0).sin().powi(2) + lat1.cos() * lat2.cos() * (dlon / 2.0).sin().powi(2);
    2.0 * EARTH_RADIUS_KM * h.sqrt().min(1.0).asin()
}

/// The answer to "who delivers to this point?".
#[derive(Debug, Clone, Copy)]
pub enum Coverage<'a> {
    /// The nearest branch whose delivery radius covers the point.
    Covered {
        branch: &'a Branch,
        distance_km: f64,
    },
    /// No branch covers it; the nearest branch with coordinates, if any.
    Outside { nearest: Option<(&'a Branch, f64)> },
    /// No branch has coordinates: coverage cannot be judged.
    Unknown,
}

/// Finds the nearest branch whose `delivery_radius_km` covers the point.
pub fn coverage(branches: &[Branch], point: (f64, f64)) -> Coverage<'_> {
    let mut nearest: Option<(&Branch, f64)> = None;
    let mut covering: Option<(&Branch, f64)> = None;
    for branch in branches {
        let (Some(lat), Some(lon)) = (branch.latitude, branch.longitude) else {
            continue;
        };
        let d = haversine_km(point, (lat, lon));
        if nearest.is_none_or(|(_, best)| d < best) {
            nearest = Some((branch, d));
        }
        if branch.delivery_radius_km > 0.0
            && d <= branch.delivery_radius_km
            && covering.is_none_or(|(_, best)| d < best)
        {
            covering = Some((branch, d));
        }
    }
    match (covering, nearest) {
        (Some((branch, distance_km)), _) => Coverage::Covered {
            branch,
            distance_km,
        },
        (None, Some(n)) => Coverage::Outside { nearest: Some(n) },
        (None, None) => Coverage::Unknown,
    }
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn haversine_matches_known_distances() {
        // Riyadh Olaya to Al Malqa: about 14 km.
        let d = haversine_km((24.6937, 46.6853), (24.8109, 46.6117));
        assert!((13.0..16.0).contains(&d), "{d}");
        assert!(haversine_km((0.0, 0.0), (0.0, 0.0)).abs() < 1e-9);
        // One degree of latitude is about 111.2 km.
        let d = haversine_km((0.0, 0.0), (1.0, 0.0));
        assert!((d - 111.2).abs() < 0.2, "{d}");
    }

    #[test]
    fn nearest_covering_branch_wins() {
        let far = Branch {
            name_en: "Far".into(),
            latitude: Some(24.80),
            longitude: Some(46.61),
            delivery_radius_km: 50.0,
            ..Default::default()
        };
        let near = Branch {
            name_en: "Near".into(),
            latitude: Some(24.70),
            longitude: Some(46.68),
            delivery_radius_km: 5.0,
            ..Default::default()
        };
        let no_delivery = Branch {
            name_en: "Closest but no delivery".into(),
            latitude: Some(24.6937),
            longitude: Some(46.6853),
            delivery_radius_km: 0.0,
            ..Default::default()
        };
        let branches = [far, near, no_delivery];
        match coverage(&branches, (24.6937, 46.6853)) {
            Coverage::Covered { branch, .. } => assert_eq!(branch.name_en, "Near"),
            other => panic!("{other:?}"),
        }
        match coverage(&branches[1..], (21.5, 39.2)) {
            Coverage::Outside {
                nearest: Some((b, d)),
            } => {
                assert_eq!(b.name_en, "Near");
                assert!(d > 500.0);
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            coverage(&[Branch::default()], (0.0, 0.0)),
            Coverage::Unknown
        ));
    }
}
